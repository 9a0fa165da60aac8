//! The PostgreSQL sink: a shard's connection pool ([`pool`]), its schema and
//! partitions ([`schema`]), the write path by binary COPY with effectively-once
//! bookkeeping ([`write`]), and how errors are classified for retries ([`error`]).
//!
//! The COPY rows themselves are encoded in `crate::batch`, once per batch, long
//! before they reach this sink; the embedded cluster is the `chute-embedded-pg` crate.

pub mod blooms;
pub mod error;
pub mod labels;
pub mod rollup;
pub mod schema;
pub mod storage;
pub mod tls;
pub mod write;

pub use error::{classify, classify_pool, Failure};

use std::time::Duration;

use anyhow::Context as _;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::NoTls;

use crate::config::dsn::{self, SslMode};

/// Builds a connection pool for one shard. Connections are made lazily.
///
/// Each connection notices a dead peer: TCP keepalives (15 s idle, then 3 probes
/// 5 s apart) and a 30 s TCP user timeout for data that is never acknowledged, unless
/// the DSN sets its own; and with `idle_in_tx`, PostgreSQL ends a transaction whose
/// client went quiet that long, so an abandoned write releases its locks.
///
/// TLS follows the string's `sslmode` as libpq does ([`dsn`]); `password`, when
/// given, wins over one in the string.
///
/// # Errors
/// An invalid connection string (the message never holds the string), or TLS
/// files that cannot be read.
pub fn pool(
    dsn: &str,
    password: Option<&str>,
    size: usize,
    idle_in_tx: Option<Duration>,
) -> anyhow::Result<Pool> {
    let (rest, tls) = dsn::split(dsn)?;
    // tokio-postgres's message names the option, never its value.
    let mut config: tokio_postgres::Config = rest.parse()?;
    config.ssl_mode(match tls.mode {
        SslMode::Disable => PgSslMode::Disable,
        SslMode::Prefer => PgSslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => PgSslMode::Require,
    });
    if let Some(p) = password {
        config.password(p);
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    // The library's default idle time is two hours: a link dead that long is noticed
    // far too late.
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(15));
        config.keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(Duration::from_secs(30));
    }
    if let Some(idle) = idle_in_tx {
        let mut options = config.get_options().unwrap_or("").to_owned();
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str(&format!(
            "-c idle_in_transaction_session_timeout={}",
            idle.as_millis()
        ));
        config.options(options);
    }
    let manager_config = ManagerConfig {
        // A connection's health is checked cheaply when it is taken; a broken one
        // fails its COPY, is classified transient, and the retry takes a new one.
        recycling_method: RecyclingMethod::Fast,
    };
    // Over a Unix socket there is no TLS (libpq ignores sslmode there too).
    let unix_only = config
        .get_hosts()
        .iter()
        .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
    let rustls = if unix_only {
        None
    } else {
        tls::postgres_config(&tls).context("TLS to PostgreSQL")?
    };
    let manager = match rustls {
        None => Manager::from_config(config, NoTls, manager_config),
        Some(rustls) => Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(rustls),
            manager_config,
        ),
    };
    Ok(Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(10)))
        .build()
        .expect("a runtime is set, so building cannot fail"))
}
