//! chute: a log router daemon. Syslog and HTTP senders hand it records; actors parse
//! them, route each to its shard by consistent hashing, and write them into the
//! shard's PostgreSQL by binary COPY.
//!
//! The binary (`src/main.rs`) only parses its command line; everything it runs lives
//! here, starting with [`app::Application`].

pub mod actors;
pub mod app;
pub mod batch;
pub mod cluster;
pub mod config;
pub mod deadletter;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod query;
pub mod record;
pub mod sinks;
pub mod sources;
pub mod status;
pub mod systemd;
pub mod telemetry;
pub mod tls;
