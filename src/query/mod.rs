//! The read path: LogQL over `chute.logs`.
//!
//! A query goes through stages, each a module with its own tests: the text is
//! parsed into a syntax tree by the `chute-logql` crate; [`plan`] splits a log query
//! into what PostgreSQL filters (bound parameters only) and what chute evaluates;
//! [`exec`] runs the plan on each shard and merges the rows; [`pipeline`] evaluates
//! parsers, label filters and formatting on each row; [`metric`] turns rows counted
//! by PostgreSQL into Loki's matrices and vectors. The Loki HTTP API on top is
//! `crate::http::loki`.

pub mod blooms;
pub mod cache;
pub mod counts;
pub mod exec;
pub mod fanout;
pub mod labels;
pub mod metric;
pub mod pipeline;
pub mod plan;
pub mod regex;
pub mod shard;
pub mod tail;
pub mod time;

/// Why a query cannot be answered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The query or a parameter is wrong (HTTP 400); the message says where.
    #[error("{0}")]
    Invalid(String),
    /// A shard could not be asked or failed to answer (HTTP 503).
    #[error("{0}")]
    Unavailable(String),
    /// The query ran past `[query] timeout_ms` and was cancelled (HTTP 503).
    #[error("the query ran longer than {0} ms (query.timeout_ms) and was cancelled")]
    Timeout(u64),
    /// No token, or one not known (HTTP 401).
    #[error("{0}")]
    Unauthorized(String),
    /// The token may not read, or not this tenant (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
}

impl QueryError {
    /// A 400 about the text at `span` of `query`: "<message> at line L, col C".
    pub fn at(query: &str, span: chute_logql::Span, message: impl std::fmt::Display) -> QueryError {
        let (line, col) = span.line_col(query);
        QueryError::Invalid(format!("{message} at line {line}, col {col}"))
    }

    /// Bounded label for `chute_queries_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            QueryError::Invalid(_) => "invalid",
            QueryError::Unavailable(_) => "unavailable",
            QueryError::Timeout(_) => "timeout",
            QueryError::Unauthorized(_) => "unauthorized",
            QueryError::Forbidden(_) => "forbidden",
        }
    }
}

impl From<chute_logql::ParseError> for QueryError {
    fn from(e: chute_logql::ParseError) -> Self {
        QueryError::Invalid(e.to_string())
    }
}

/// A shard's failure as the answer states it: a cancelled statement is the
/// timeout; anything else names the shard and PostgreSQL's message.
pub fn shard_error(shard: u32, timeout_ms: u64, e: &tokio_postgres::Error) -> QueryError {
    if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
        return QueryError::Timeout(timeout_ms);
    }
    let text = e
        .as_db_error()
        .map_or_else(|| e.to_string(), |d| d.message().to_owned());
    tracing::warn!(shard, error = %text, "a query failed on a shard");
    QueryError::Unavailable(format!("shard {shard} failed to answer: {text}"))
}
