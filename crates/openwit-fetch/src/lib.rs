//! `openwit-fetch`: the `download` stage — fetch, validate, resize, and write shards in
//! img2dataset's webdataset layout (through `openwit-shard`).
//!
//! - [`DownloadStage`]: the stage (one task per shard of `shard_size` input rows; `sizes.json`
//!   in the reduce step). Build it from a [`Config`] (the `[download]` table).
//! - [`Fetcher`]: the HTTP client with the politeness and safety rules (robots.txt, parsed by
//!   `openwit_http::robots`; `X-Robots-Tag`, per-host limits, retries with backoff, address
//!   rules, body caps).
//! - [`imaging::process`]: sniff, bomb-check, decode (DCT-scaled JPEG), orient, resize, encode.
//! - [`input`]: the curated table or URL lists (parquet/csv/tsv/jsonl, optionally gzipped).
//!
//! ```
//! use openwit_fetch::imaging::{ImageOptions, process};
//! let img = image::RgbImage::from_pixel(640, 320, image::Rgb([200, 10, 10]));
//! let jpg = openwit_fetch::imaging::encode(&img, openwit_fetch::EncodeFormat::Jpg, 90).unwrap();
//! let out = process(&jpg, &ImageOptions::default()).unwrap();
//! assert_eq!((out.width, out.height), (256, 256)); // border: fit inside 256x256, pad white
//! assert_eq!((out.original_width, out.original_height), (640, 320));
//! ```

pub mod budget;
pub mod config;
pub mod fetch;
pub mod imaging;
pub mod input;
mod stage;

pub use config::{Config, EncodeFormat, InputFormat, ResizeMode};
pub use fetch::{FetchFail, Fetched, Fetcher};
pub use stage::DownloadStage;
