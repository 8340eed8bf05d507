//! The errors of `openwit-clip`.

use std::path::{Path, PathBuf};

/// What can go wrong while building, training or evaluating a model.
#[derive(Debug, thiserror::Error)]
pub enum ClipError {
    /// A bad setting (exit code 2), with the fix in the message.
    #[error("{0}")]
    Config(String),
    /// An I/O error on `path`.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// libtorch refused an operation (a file it cannot read, a device it does not have).
    #[error("{path}: {message}")]
    Torch { path: PathBuf, message: String },
    /// A checkpoint or weights file that does not fit the model.
    #[error("{0}")]
    Checkpoint(String),
    /// The data has no usable sample.
    #[error("{0}")]
    Data(String),
    /// The run was stopped.
    #[error("interrupted")]
    Interrupted,
}

impl ClipError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> ClipError {
        ClipError::Io {
            path: path.into(),
            source,
        }
    }
    pub fn torch(path: &Path, e: tch::TchError) -> ClipError {
        ClipError::Torch {
            path: path.to_path_buf(),
            message: e.to_string(),
        }
    }
}

impl From<ClipError> for openwit_core::Error {
    fn from(e: ClipError) -> Self {
        match e {
            ClipError::Config(m) => openwit_core::Error::Config(m),
            ClipError::Io { path, source } => openwit_core::Error::Io { path, source },
            ClipError::Interrupted => openwit_core::Error::Interrupted,
            other => openwit_core::Error::Stage(other.to_string()),
        }
    }
}

/// `Result` with [`ClipError`].
pub type Result<T, E = ClipError> = std::result::Result<T, E>;

pub(crate) trait IoAt<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|e| ClipError::io(path, e))
    }
}
