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
    match e.code() {
        None => Failure::Transient("connection"),
        Some(code) => classify_code(code),
    }
}

/// Classifies a SQLSTATE. Failures that a retry cures by itself (`connection`,
/// `admin_shutdown`, `serialization`, `resources`) are told apart from those that
/// need a person (`permission`, `undefined_object`, `canceled`: a statement
/// timeout or a cancel, `other`), so the retries count and the alerts can say which.
pub fn classify_code(code: &SqlState) -> Failure {
    let c = code.code();
    if code == &SqlState::ADMIN_SHUTDOWN
        || code == &SqlState::CRASH_SHUTDOWN
        || code == &SqlState::CANNOT_CONNECT_NOW
    {
        Failure::Transient("admin_shutdown")
    } else if c.starts_with("08") || code == &SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT {
        Failure::Transient("connection")
    } else if code == &SqlState::T_R_SERIALIZATION_FAILURE
        || code == &SqlState::T_R_DEADLOCK_DETECTED
    {
        Failure::Transient("serialization")
    } else if c.starts_with("53") {
        Failure::Transient("resources")
    } else if code == &SqlState::QUERY_CANCELED {
        Failure::Transient("canceled")
    } else if code == &SqlState::INSUFFICIENT_PRIVILEGE || c.starts_with("28") {
        Failure::Transient("permission")
    } else if code == &SqlState::UNDEFINED_TABLE
        || code == &SqlState::UNDEFINED_COLUMN
        || code == &SqlState::UNDEFINED_FUNCTION
        || code == &SqlState::UNDEFINED_OBJECT
        || code == &SqlState::INVALID_SCHEMA_NAME
    {
        Failure::Transient("undefined_object")
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

/// `e` and every error beneath it, joined by ": " (tokio-postgres says "error
/// performing TLS handshake", the cause beneath says which certificate failed).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlstates_are_classed_by_what_cures_them() {
        let cases = [
            ("57P01", Failure::Transient("admin_shutdown")),
            ("08006", Failure::Transient("connection")),
            ("25P03", Failure::Transient("connection")),
            ("40001", Failure::Transient("serialization")),
            ("53100", Failure::Transient("resources")),
            ("57014", Failure::Transient("canceled")),
            ("42501", Failure::Transient("permission")),
            ("28P01", Failure::Transient("permission")),
            ("42P01", Failure::Transient("undefined_object")),
            ("3F000", Failure::Transient("undefined_object")),
            ("22P02", Failure::Content("data_exception")),
            ("23514", Failure::Content("integrity_violation")),
            ("54000", Failure::Content("program_limit")),
            ("XX000", Failure::Transient("other")),
        ];
        for (code, want) in cases {
            assert_eq!(classify_code(&SqlState::from_code(code)), want, "{code}");
        }
    }
}
