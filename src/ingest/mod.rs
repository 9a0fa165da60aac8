//! Turning what senders send into records: request bodies (decompression with limits)
//! and JSON / NDJSON parsing with per-record errors.

pub mod body;
pub mod json;
