//! Error classes of a failed write: retry the batch, or isolate the rows PostgreSQL
//! refuses for their content.

use tokio_postgres::error::SqlState;

/// What to do about a failed write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The server or the connection failed, not the data: retry the same batch later.
    /// The `&str` is the metric reason.
    Transient(&'static str),
    /// PostgreSQL refused the data itself: isolate the offending rows.
    Content(&'static str),
}

/// Classifies an error by its SQLSTATE. No SQLSTATE means the connection broke.
/// Anything not known to be about the data is retried: a record is never dropped
/// because PostgreSQL was briefly unhappy (an undefined table is retried too, and
/// logged loudly, until an operator fixes it).
pub fn classify(e: &tokio_postgres::Error) -> Failure {
    let Some(code) = e.code() else {
        return Failure::Transient("connection");
    };
    let c = code.code();
    if code == &SqlState::ADMIN_SHUTDOWN
        || code == &SqlState::CRASH_SHUTDOWN
        || code == &SqlState::CANNOT_CONNECT_NOW
    {
        Failure::Transient("admin_shutdown")
    } else if c.starts_with("08") {
        Failure::Transient("connection")
    } else if code == &SqlState::T_R_SERIALIZATION_FAILURE
        || code == &SqlState::T_R_DEADLOCK_DETECTED
    {
        Failure::Transient("serialization")
    } else if c.starts_with("53") {
        Failure::Transient("resources")
    } else if c.starts_with("22") {
        Failure::Content("data_exception")
    } else if c.starts_with("23") {
        Failure::Content("integrity_violation")
    } else if code == &SqlState::PROGRAM_LIMIT_EXCEEDED {
        // e.g. "index row size exceeds btree maximum" for one huge value
        Failure::Content("program_limit")
    } else {
        Failure::Transient("other")
    }
}

/// Classifies a pool error (a failed connect is transient).
pub fn classify_pool(e: &deadpool_postgres::PoolError) -> Failure {
    match e {
        deadpool_postgres::PoolError::Backend(e) => classify(e),
        _ => Failure::Transient("connection"),
    }
}
