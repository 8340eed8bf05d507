//! tracing to stderr (and to `WORKDIR/logs/`).

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Starts logging. The terminal (stderr) gets warnings and errors only, beside the progress bars
/// and each stage's summary on stdout; `-v` adds info, `-vv` debug, `-vvv` trace; `-q` only
/// hides the progress bars; `RUST_LOG` overrides all of these. The log file in `WORKDIR/logs/` always gets
/// info and above, so nothing said at info level is lost.
pub fn init(workdir: Option<&Path>, _quiet: bool, verbose: u8, _bars: bool) {
    let default = match verbose {
        3.. => "trace",
        2 => "debug",
        1 => "info",
        0 => "warn",
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
