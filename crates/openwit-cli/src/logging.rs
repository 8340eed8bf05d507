//! tracing to stderr (and to `WORKDIR/logs/`).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Starts logging. On a terminal with progress bars, stderr shows warnings only unless -v; in
/// scripts and CI (stderr not a terminal) it shows info. The log file always gets info.
pub fn init(workdir: Option<&Path>, quiet: bool, verbose: u8, bars: bool) {
    let default = match (quiet, verbose, bars || !std::io::stderr().is_terminal()) {
        (_, 2.., _) => "trace",
        (_, 1, _) => "debug",
        (true, 0, _) => "warn",
        (false, 0, true) if bars => "warn",
        _ => "info",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    let file = workdir.and_then(|w| {
        let dir = w.join("logs");
        std::fs::create_dir_all(&dir).ok()?;
        let name = format!("openwit-{}-{}.log", unix_secs(), std::process::id());
        let f = std::fs::File::create(dir.join(name)).ok()?;
        Some(
            tracing_subscriber::fmt::layer()
                .with_writer(Mutex::new(f))
                .with_ansi(false)
                .with_filter(EnvFilter::new("info")),
        )
    });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

use tracing_subscriber::Layer;

fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
