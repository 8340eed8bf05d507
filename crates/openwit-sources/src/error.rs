//! Errors of this crate, converted into [`openwit_core::Error`] at the stage boundary.

/// What can go wrong in a source (bad records are counted drops, not errors).
#[derive(Debug, thiserror::Error)]
pub enum SourcesError {
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    #[error("SQLite frontier {0}: {1}")]
    Sqlite(String, #[source] rusqlite::Error),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Http(String),
    #[error(transparent)]
    Core(#[from] openwit_core::Error),
}

impl From<SourcesError> for openwit_core::Error {
    fn from(e: SourcesError) -> Self {
        match e {
            SourcesError::Config(m) => openwit_core::Error::Config(m),
            SourcesError::Io(p, source) => openwit_core::Error::Io {
                path: p.into(),
                source,
            },
            SourcesError::Core(e) => e,
            other => openwit_core::Error::Stage(other.to_string()),
        }
    }
}

pub(crate) trait IoAt<T> {
    fn at(self, what: impl std::fmt::Display) -> Result<T, SourcesError>;
}

impl<T> IoAt<T> for std::io::Result<T> {
    fn at(self, what: impl std::fmt::Display) -> Result<T, SourcesError> {
        self.map_err(|e| SourcesError::Io(what.to_string(), e))
    }
}
