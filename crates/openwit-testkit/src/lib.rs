//! Test helpers shared by every stage's tests.
//!
//! - [`server::TestServer`]: a real HTTP/1.1 server on a loopback address that serves fixed
//!   routes, files and generated content, and injects faults (delays, slow bodies, resets,
//!   stalls, redirects, status codes). It logs every request, so tests can check politeness
//!   (one robots.txt fetch per host, per-host concurrency).
//! - [`harness`]: runs the real `openwit` binary, kills it with SIGKILL after N finished tasks
//!   or at a seeded random moment, reruns it, and digests the workdir's outputs to compare them
//!   with an uninterrupted run.
//! - [`exec`]: one stage run by the local executor the way tests and examples run it (one
//!   attempt per task, no progress display).
//! - [`proxy::Proxy`]: a forwarding HTTP proxy on a loopback address that records the request
//!   line and `Host` of every request (for the `[pipeline] proxy` tests).

pub mod exec;
pub mod harness;
pub mod proxy;
pub mod server;

pub use exec::{executor, run_stage};
pub use harness::{
    Killed, Run, digest_outputs, kill_after_tasks, kill_at, openwit_bin, reproducible_digests,
    run_to_end,
};
pub use proxy::Proxy;
pub use server::{Fault, Request, Response, TestServer};
