//! How PostgreSQL's errors become the port's: a server that cannot be
//! reached, or that went away, is [`StoreError::Unavailable`] (retry later);
//! anything else is [`StoreError::Backend`].

use store::StoreError;
use tokio_postgres::error::SqlState;

/// Whether `error` says the server is out of reach rather than that a
/// statement failed.
pub(crate) fn is_unavailable(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        Some(code) => {
            code.code().starts_with("08")
                || *code == SqlState::ADMIN_SHUTDOWN
                || *code == SqlState::CRASH_SHUTDOWN
                || *code == SqlState::CANNOT_CONNECT_NOW
                || *code == SqlState::TOO_MANY_CONNECTIONS
        }
        // No SQLSTATE: an I/O error, a timeout, a TLS failure.
        None => error.as_db_error().is_none(),
    }
}

/// The port's error for a failed statement.
pub(crate) fn from_postgres(error: tokio_postgres::Error) -> StoreError {
    if is_unavailable(&error) {
        StoreError::Unavailable(format!("PostgreSQL: {error}"))
    } else {
        StoreError::Backend(format!("PostgreSQL: {}", describe(&error)))
    }
}

/// The port's error for a connection that could not be had from the pool.
pub(crate) fn from_pool(endpoint: &str, error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) if !is_unavailable(&error) => {
            StoreError::Backend(format!("PostgreSQL at {endpoint}: {}", describe(&error)))
        }
        deadpool_postgres::PoolError::Closed => StoreError::Closed,
        other => unreachable_server(endpoint, &other),
    }
}

/// [`StoreError::Unavailable`] naming the server.
pub(crate) fn unreachable_server(endpoint: &str, error: &dyn std::fmt::Display) -> StoreError {
    StoreError::Unavailable(format!("cannot reach PostgreSQL at {endpoint}: {error}"))
}

/// The server's own message when there is one (tokio-postgres's `Display`
/// says only "db error").
fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}
