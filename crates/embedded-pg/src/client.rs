//! Talking to the server as a client: its DSN over the Unix socket, readiness probes,
//! and creating the database, with names checked and quoted.

use std::path::Path;
use tokio::runtime::Runtime;
use tokio_postgres::NoTls;
use tracing::info;

use crate::{EmbeddedError, MAX_IDENTIFIER, PROBE_TIMEOUT, SUPERUSER};

/// A client error with the server's message (tokio-postgres's own `Display`
/// only says "db error").
pub(crate) fn describe_pg(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// See [`EmbeddedPostgres::dsn`].
pub(crate) fn dsn_for(dir: &Path, port: u16, dbname: &str) -> String {
    format!(
        "host={} port={} user={} dbname={}",
        quote_conninfo(&dir.to_string_lossy()),
        port,
        SUPERUSER,
        quote_conninfo(dbname)
    )
}

/// Client configuration for the cluster at `dir`.
pub(crate) fn client_config(dir: &Path, port: u16, dbname: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(dir)
        .port(port)
        .user(SUPERUSER)
        .dbname(dbname)
        .connect_timeout(PROBE_TIMEOUT);
    config
}

/// One readiness probe: can we connect and log in? The error text on failure.
pub(crate) fn probe(rt: &Runtime, dir: &Path, port: u16) -> Result<(), String> {
    let config = client_config(dir, port, "postgres");
    rt.block_on(async {
        match tokio::time::timeout(PROBE_TIMEOUT, config.connect(NoTls)).await {
            Ok(Ok(_connected)) => Ok(()),
            Ok(Err(e)) => Err(describe_pg(&e)),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    })
}

/// Creates database `name` unless it exists.
pub(crate) fn ensure_database(
    rt: &Runtime,
    dir: &Path,
    port: u16,
    name: &str,
) -> Result<(), EmbeddedError> {
    let config = client_config(dir, port, "postgres");
    let pg_err = |action: &str| {
        let action = action.to_string();
        move |source| EmbeddedError::Postgres { action, source }
    };
    rt.block_on(async {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(pg_err("connect to the embedded PostgreSQL"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let result = async {
            let rows = client
                .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .map_err(pg_err("look up databases"))?;
            if rows.is_empty() {
                info!(database = name, "creating database");
                let created = client
                    .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
                    .await;
                match created {
                    Err(e)
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
                    other => other.map_err(pg_err(&format!("create database {name:?}")))?,
                }
            }
            Ok(())
        }
        .await;
        drop(client);
        let _ = driver.await;
        result
    })
}

/// Rejects database names PostgreSQL would reject or silently truncate.
pub(crate) fn validate_database_name(name: &str) -> Result<(), EmbeddedError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name.len() > MAX_IDENTIFIER {
        "it is longer than 63 bytes"
    } else {
        return Ok(());
    };
    Err(EmbeddedError::InvalidDatabaseName {
        name: name.to_string(),
        reason: reason.into(),
    })
}

/// An SQL identifier in double quotes.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A libpq connection-string value in single quotes, `'` and `\` escaped.
pub(crate) fn quote_conninfo(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}
