//! What can go wrong with the store, for both engines: one error type,
//! whose causes keep their engine's own types (the daemon waits for a
//! PostgreSQL store that cannot be reached; any other failure is said
//! as it is).

use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("cannot open the store {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("cannot create the store's folder {path}: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the store {store} has schema version {version}, and this relais knows up to {known}: \
         it was written by a newer relais; run that version, or restore the store's backup"
    )]
    Newer {
        store: String,
        version: usize,
        known: usize,
    },
    #[error("cannot start the store's thread: {0}")]
    Thread(std::io::Error),
    #[error("the store failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the PostgreSQL store {url}: {cause}")]
    Postgres { url: String, cause: PostgresCause },
    /// A group commit failed: each delivery of the batch gets its cause.
    #[error("the store could not write: {0}")]
    Write(Arc<StoreError>),
    #[error("the store's data is not what this relais expects: {0}")]
    Shape(String),
    #[error("the store was opened to be read only")]
    ReadOnly,
    #[error("the store is closed")]
    Closed,
}

impl StoreError {
    /// Whether the store could not be reached at that moment, so that the
    /// same work may succeed later: no PostgreSQL connection could be had,
    /// one broke or was ended by the server (a restart, a failover), or
    /// the SQLite file stayed locked by another writer past the wait.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Postgres {
                cause: PostgresCause::Pool(_),
                ..
            } => true,
            Self::Postgres {
                cause: PostgresCause::Query(error),
                ..
            } => {
                // The connection closed or failed under the statement; or
                // the server said: connection exception, admin or crash
                // shutdown, cannot connect now. Not a statement it refused,
                // nor a value that could not be converted: those would
                // fail again.
                error.is_closed()
                    || std::error::Error::source(error)
                        .is_some_and(|cause| cause.is::<std::io::Error>())
                    || error.code().is_some_and(|code| {
                        code.code().starts_with("08") || code.code().starts_with("57P0")
                    })
            }
            Self::Sqlite(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            Self::Write(cause) => cause.is_unavailable(),
            _ => false,
        }
    }
}

/// Why the PostgreSQL store failed.
#[derive(Debug, Error)]
pub enum PostgresCause {
    /// `store.url` or `store.ca_file` cannot be used.
    #[error("{0}")]
    Settings(String),
    /// No connection could be had (PostgreSQL down, unreachable, refusing).
    #[error("{}", with_causes(.0))]
    Pool(deadpool_postgres::PoolError),
    /// A statement failed, or the connection broke during it.
    #[error("{}", with_causes(.0))]
    Query(tokio_postgres::Error),
}

/// `error` and each of its causes that its own words do not already say
/// (tokio-postgres says "error performing TLS handshake", and its cause
/// why: e.g. that the server does not support TLS).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut said = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !said.contains(&text) {
            said.push_str(": ");
            said.push_str(&text);
        }
        source = cause.source();
    }
    said
}
