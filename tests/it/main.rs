//! chute's integration tests: one binary, a real PostgreSQL started by chute's own
//! embedded-PostgreSQL code, a fresh database and a fresh chute per test.

mod auth;
mod blooms;
mod chaos;
mod cli;
mod cluster;
mod cluster_query;
mod console;
mod count_cache;
mod deadletter;
mod durability;
mod elastic;
mod grafana;
mod helpers;
mod hostile;
mod ingest_api;
mod layout;
mod limits;
mod loki_push;
mod ops;
mod otlp;
mod pg_tls;
mod query;
mod regex;
mod retention;
mod retention_tenants;
mod rollup;
mod storage;
mod syslog;
mod syslog_tenancy;
mod tail;
