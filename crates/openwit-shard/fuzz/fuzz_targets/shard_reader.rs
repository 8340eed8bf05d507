//! The shard reader on arbitrary bytes as a tar: no panic, at most one error and nothing after
//! it, every member's data where its offset says, samples from the complete members, and a
//! prefix of the tar reading as the same members (`check.rs`, also run on every seed by
//! `tests/real_tars.rs`).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "check.rs"]
mod check;

fuzz_target!(|data: &[u8]| check::check(data));
