//! The PostgreSQL sink: a shard's connection pool ([`pool`]), its schema and
//! partitions ([`schema`]), the write path by binary COPY with effectively-once
//! bookkeeping ([`write`]), and how errors are classified for retries ([`error`]).
//!
//! The COPY rows themselves are encoded in `crate::batch`, once per batch, long
//! before they reach this sink; the embedded cluster is the `chute-embedded-pg` crate.

pub mod error;
pub mod schema;
pub mod write;

pub use error::{classify, classify_pool, Failure};

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
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
