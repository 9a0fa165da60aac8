//! PostgreSQL: connection pools, the schema, binary COPY, the embedded cluster, and
//! how errors are classified for retries.

pub mod copy;
pub mod embedded;
pub mod schema;
pub mod write;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::error::SqlState;
use tokio_postgres::NoTls;

/// Builds a connection pool for one shard. Connections are made lazily.
///
/// # Errors
/// An invalid connection string.
pub fn pool(dsn: &str, size: usize) -> Result<Pool, tokio_postgres::Error> {
    let config: tokio_postgres::Config = dsn.parse()?;
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            // A connection's health is checked cheaply when it is taken; a broken one
            // fails its COPY, is classified transient, and the retry takes a new one.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(std::time::Duration::from_secs(10)))
        .build()
        .expect("a runtime is set, so building cannot fail"))
}

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
