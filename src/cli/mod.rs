//! The client commands of the `chute` binary that talk to a running node.

pub mod logs;

/// TLS settings for reaching a node over `https://`.
pub type ClientTls = std::sync::Arc<rustls::ClientConfig>;
