//! The errors of the queries stage.

use std::path::PathBuf;

/// What can go wrong building the query list. Bad records inside a file are counted drops, not
/// errors; these are for files that cannot be read at all.
#[derive(Debug, thiserror::Error)]
pub enum QueriesError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A broken input file: names the file, where, and what to do.
    #[error("{path}:{line}: {msg}\n  fix: {fix}")]
    Input {
        path: PathBuf,
        line: usize,
        msg: String,
        fix: String,
    },
    /// A compressed or XML input that breaks at a byte offset.
    #[error("{path}: broken at byte {offset}: {msg}\n  fix: {fix}")]
    Broken {
        path: PathBuf,
        offset: u64,
        msg: String,
        fix: String,
    },
    #[error("{path}: parquet: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    #[error("{0}")]
    Config(String),
    #[error("download {url}: {msg}")]
    Download { url: String, msg: String },
    #[error("interrupted")]
    Interrupted,
    /// An error from `openwit-core` (outputs, scratch space, atomic writes).
    #[error(transparent)]
    Core(#[from] openwit_core::Error),
}

impl QueriesError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        QueriesError::Io {
            path: path.into(),
            source,
        }
    }
}

impl From<QueriesError> for openwit_core::Error {
    fn from(e: QueriesError) -> Self {
        match e {
            QueriesError::Io { path, source } => openwit_core::Error::Io { path, source },
            QueriesError::Config(m) => openwit_core::Error::Config(m),
            QueriesError::Interrupted => openwit_core::Error::Interrupted,
            QueriesError::Core(e) => e,
            other => openwit_core::Error::Stage(other.to_string()),
        }
    }
}

pub type Result<T, E = QueriesError> = std::result::Result<T, E>;
