//! The one error type of `openwit-core`.

use std::path::PathBuf;

/// Errors raised by stages, the executors (`openwit-exec`) and the helpers of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The run state (`openwit-exec`'s SQLite database) could not be read or written.
    #[error("run state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The configuration is invalid (exit code 2).
    #[error("{0}")]
    Config(String),
    /// Another `openwit` process holds the workdir.
    #[error(
        "workdir {workdir} is in use by another openwit process (pid {pid}); wait for it to finish or stop it first"
    )]
    Locked { workdir: PathBuf, pid: String },
    /// A stage's configuration changed since its outputs were made.
    #[error(
        "the configuration of stage `{stage}` changed since its outputs were made (changed keys: {keys}); \
         rerun with `--restart {stage}` to discard its outputs and everything downstream, or restore the old values"
    )]
    ConfigChanged { stage: String, keys: String },
    /// Some tasks of a stage failed after all their attempts.
    #[error(
        "stage `{stage}`: {failed} task(s) failed after {attempts} attempt(s); first: task `{task}`: {error}\n\
         hint: {hint}"
    )]
    TasksFailed {
        stage: String,
        failed: usize,
        attempts: u32,
        task: String,
        error: String,
        hint: String,
    },
    /// A stage-specific failure, with a message that says what to do.
    #[error("{0}")]
    Stage(String),
    /// The run was interrupted (Ctrl-C).
    #[error("interrupted")]
    Interrupted,
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// Whether the error is the user's configuration (exit code 2) rather than a failed run (exit code 1).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Config(_) | Error::ConfigChanged { .. } | Error::Locked { .. }
        )
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a path to `std::io::Result`s.
pub trait IoContext<T> {
    /// Attaches `path` to the error.
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

/// The text of a caught panic's payload (`panic!` gives a `&str` or a `String`).
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
