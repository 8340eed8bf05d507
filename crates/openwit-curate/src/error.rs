//! Errors of the curate and balance stages.

use std::path::PathBuf;

/// What can go wrong while curating (bad records are counted drops, not errors).
#[derive(Debug, thiserror::Error)]
pub enum CurateError {
    /// The query list could not be read or parsed.
    #[error("query list {path}: {msg}\n  fix: {fix}")]
    Queries {
        path: PathBuf,
        msg: String,
        fix: String,
    },
    /// A candidate file is not a candidate table.
    #[error("candidate file {path}: {msg}\n  fix: {fix}")]
    Candidates {
        path: PathBuf,
        msg: String,
        fix: String,
    },
    /// A parquet file could not be read or written.
    #[error("{path}: {source}")]
    Parquet {
        path: PathBuf,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// An Arrow operation failed.
    #[error("{path}: {source}")]
    Arrow {
        path: PathBuf,
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// The automaton could not be built.
    #[error("cannot build the query automaton: {0}")]
    Automaton(String),
    /// What every stage can meet (an I/O error on a path, the run interrupted), as the
    /// executor reports it.
    #[error(transparent)]
    Core(#[from] openwit_core::Error),
}

impl From<CurateError> for openwit_core::Error {
    fn from(e: CurateError) -> Self {
        match e {
            CurateError::Core(e) => e,
            other => openwit_core::Error::Stage(other.to_string()),
        }
    }
}

pub(crate) trait PqCtx<T> {
    fn pq(self, path: &std::path::Path) -> Result<T, CurateError>;
}

impl<T> PqCtx<T> for Result<T, parquet::errors::ParquetError> {
    fn pq(self, path: &std::path::Path) -> Result<T, CurateError> {
        self.map_err(|source| CurateError::Parquet {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl<T> PqCtx<T> for Result<T, arrow_schema::ArrowError> {
    fn pq(self, path: &std::path::Path) -> Result<T, CurateError> {
        self.map_err(|source| CurateError::Arrow {
            path: path.to_path_buf(),
            source,
        })
    }
}

impl<T> PqCtx<T> for std::io::Result<T> {
    fn pq(self, path: &std::path::Path) -> Result<T, CurateError> {
        self.map_err(|source| openwit_core::Error::io(path, source).into())
    }
}
