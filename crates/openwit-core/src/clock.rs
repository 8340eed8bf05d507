//! Wall-clock times that go into outputs (a page's fetch time, a shard's start and end), and
//! the real clock ([`now`]).
//!
//! `SOURCE_DATE_EPOCH` (seconds since the Unix epoch, the reproducible-builds convention) fixes
//! them, so two runs over the same inputs write identical bytes — how the scale-out tests
//! compare a cluster run with a local one. Scheduling (politeness delays, timeouts) always uses
//! the real clock.

use std::time::{SystemTime, UNIX_EPOCH};

fn fixed() -> Option<f64> {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|s| s as f64)
}

/// Seconds since the Unix epoch, or `SOURCE_DATE_EPOCH` when set.
pub fn output_time_s() -> f64 {
    fixed().unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0)
    })
}

/// Milliseconds since the Unix epoch, or `SOURCE_DATE_EPOCH` (in ms) when set.
pub fn output_time_ms() -> i64 {
    (output_time_s() * 1000.0) as i64
}

/// Seconds since the Unix epoch (the real clock, whatever `SOURCE_DATE_EPOCH` says).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
