// STUB (replaced by the real module)
use chrono::{DateTime, Utc};
use crate::ingest::body::BodyFormat;
use crate::record::Record;
#[derive(Debug, serde::Serialize)]
pub struct Rejection { pub index: usize, pub error: String }
pub struct Parsed { pub records: Vec<Record>, pub rejected: Vec<Rejection>, pub nul_replaced: usize, pub invalid_utf8: usize }
#[derive(Debug, thiserror::Error)]
pub enum ParseError { #[error("empty")] Empty, #[error("syntax {0}")] Syntax(String) }
impl ParseError { pub fn reason(&self) -> &'static str { "x" } }
pub fn parse(_b: &[u8], _f: BodyFormat, _r: DateTime<Utc>, _t: &str) -> Result<Parsed, ParseError> { Err(ParseError::Empty) }
