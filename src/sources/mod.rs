//! Where records come in: one folder per protocol, each turning bytes into
//! [`crate::record::Record`]s (or encoded batches) and handing them on. A source
//! depends on `record`, `batch` and the actors it feeds, never on another source.
//!
//! - [`http`]: chute's JSON / NDJSON bodies (decompression with limits, parsing
//!   with per-record errors); its route is `crate::http`'s `POST /api/v1/logs`.
//! - [`syslog`]: RFC 5424 / 3164 over UDP, TCP, TLS and Unix sockets, with their
//!   listeners.
//! - [`loki`]: Loki's push API (snappy protobuf and JSON).
//! - [`otlp`]: OTLP/HTTP logs (protobuf and JSON).
//! - [`elastic`]: Elasticsearch's `_bulk` (NDJSON actions and documents).
//!
//! [`wire`] weighs a protobuf body before it is decoded (OTLP, Loki push).
//! [`verdict`] is what the sources that answer per record share: the records, the
//! refused ones and why, and the counting of both.

pub mod elastic;
pub mod http;
pub mod loki;
pub mod otlp;
pub mod syslog;
pub mod verdict;
pub mod wire;
