//! The one error type of `openwit-core`.

use std::path::PathBuf;

/// Errors raised by the run state, the executor and the helpers of this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O operation failed on `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The SQLite run state could not be read or written.
    #[error("run state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
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
