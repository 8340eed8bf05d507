//! Errors of this crate.

use std::path::PathBuf;

/// What can go wrong while indexing, searching, reporting or serving.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("index {path}: {message}")]
    Tantivy { path: PathBuf, message: String },
    #[error(
        "cannot parse the query `{query}`: {message}\n\
         hint: quote phrases (\"red car\"), filter with entry:\"golden retriever\", domain:example.org, \
         language:en, shard:00001, width:[256 TO *]; escape other special characters with a backslash"
    )]
    Query { query: String, message: String },
    #[error("{0}")]
    NoIndex(String),
    #[error(transparent)]
    Shard(#[from] openwit_shard::ShardError),
    #[error("{0}")]
    Other(String),
}

impl IndexError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IndexError::Io {
            path: path.into(),
            source,
        }
    }
    pub(crate) fn tantivy(path: impl Into<PathBuf>, e: impl std::fmt::Display) -> Self {
        IndexError::Tantivy {
            path: path.into(),
            message: e.to_string(),
        }
    }
}

impl From<IndexError> for openwit_core::Error {
    fn from(e: IndexError) -> Self {
        match e {
            IndexError::Io { path, source } => openwit_core::Error::Io { path, source },
            IndexError::Query { .. } | IndexError::NoIndex(_) => {
                openwit_core::Error::Config(e.to_string())
            }
            other => openwit_core::Error::Stage(other.to_string()),
        }
    }
}

/// `Result` with [`IndexError`].
pub type Result<T, E = IndexError> = std::result::Result<T, E>;
