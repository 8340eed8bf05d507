//! `openwit-http`: the one guarded HTTP client of every OpenWIT stage and what it reads.
//!
//! - [`HttpClient`] ([`client`]): the crawl, the WARC reader, the image download and the queries
//!   downloader send every request through it: address rules ([`net`]) on the first request and
//!   on every redirect hop, one redirect policy, the optional `[pipeline] proxy` (reached by
//!   checked IP address; `https://` through a `CONNECT` tunnel that `tunnel` opens), the
//!   robots.txt fetch and cache, the default user agent.
//! - [`net`]: which addresses a request may reach, and the guarded resolver.
//! - [`robots`]: robots.txt (RFC 9309, Google's leniencies); [`optout`]: `X-Robots-Tag` and
//!   robots `<meta>` opt-outs as Google reads them.
//!
//! A shared crate: stages use it, it uses only `openwit-core` (errors, the `[pipeline] proxy`
//! rule, the settable clock).

pub mod client;
pub mod net;
pub mod optout;
pub mod robots;
mod tunnel;

pub use client::{
    DEFAULT_PRODUCT_TOKEN, DEFAULT_USER_AGENT, FailKind, Followed, HttpClient, HttpError,
    HttpSettings, MAX_REDIRECTS, MAX_ROBOTS_BYTES, RobotsCache, RobotsTxt, check_target,
    error_chain, fetch_robots, path_and_query, read_capped, redirect_target,
};
