//! An Elasticsearch `_bulk` body → [`Record`]s, one item per action.
//!
//! The body is NDJSON: an action line, then (for `index`, `create` and
//! `update`) a document line. `index` and `create` store their document;
//! `delete` and `update` get an item error (chute stores logs, it does not edit
//! them), as does a document that is not a JSON object or whose fields cannot
//! be read. An action line that is not an action refuses the whole body, as
//! Elasticsearch does. Blank lines are skipped.
//!
//! # Document → columns
//!
//! | document | column |
//! |---|---|
//! | `@timestamp`: RFC 3339, a date-time without zone (UTC), a date, or epoch milliseconds (a number or digits); absent: the time of receipt | `ts` |
//! | `message`, else `log` (Fluent Bit's tail); any other JSON value as its text; absent: empty | `message` |
//! | ECS `host.name` (an object or a dotted key), else `host` as a string, else `hostname` | `host` |
//! | ECS `service.name`, else `app` | `app` |
//! | ECS `log.level`, else `level`, else `severity`: the syslog names, `fatal`, `trace` | `severity` |
//! | ECS `process.pid` (a number or digits) | `procid` |
//!
//! Whatever else the document holds stays in `fields` as it is (ECS objects
//! keep their nesting, with the taken keys removed), and the action's index
//! is kept as `_index`. A document's `_id` is not kept: records have no id.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::record::{level_severity, lossy_utf8, Record, JSON_NUL_ESCAPE, MAX_NAME_BYTES};
use crate::sources::verdict::{json_kind, ParseError, Parsed};

/// The decoded body: the records to store, and one item per action for the
/// answer.
#[derive(Debug, Default, PartialEq)]
pub struct Bulk {
    pub parsed: Parsed,
    pub items: Vec<Item>,
}

impl AsRef<Parsed> for Bulk {
    fn as_ref(&self) -> &Parsed {
        &self.parsed
    }
}

/// What an action was, and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub op: Op,
    /// The action's `_index`, else the path's.
    pub index: String,
    /// The action's `_id`, if it named one.
    pub id: Option<String>,
    /// Why it was refused (a 400 item); `None`: stored.
    pub error: Option<String>,
}

/// A bulk action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Index,
    Create,
    Update,
    Delete,
}

impl Op {
    /// Its name in a bulk body and answer.
    pub fn name(self) -> &'static str {
        match self {
            Op::Index => "index",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
        }
    }
}

/// An action line: `{"index": {"_index": "logs", "_id": "1"}}`.
#[derive(Deserialize)]
struct Action {
    index: Option<Meta>,
    create: Option<Meta>,
    update: Option<Meta>,
    delete: Option<Meta>,
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(rename = "_index")]
    index: Option<String>,
    #[serde(rename = "_id")]
    id: Option<Value>,
}

/// The longest index name Elasticsearch allows.
const MAX_INDEX_BYTES: usize = 255;

/// An index name chute keeps (in `fields`): 1 to 255 bytes, no control
/// characters, not starting with `_`.
pub fn check_index(index: &str) -> Result<(), String> {
    if index.is_empty() || index.len() > MAX_INDEX_BYTES {
        return Err(format!("_index: 1 to {MAX_INDEX_BYTES} bytes"));
    }
    if index.starts_with('_') || index.chars().any(char::is_control) {
        return Err("_index: starts with _ or holds a control character".into());
    }
    Ok(())
}

/// Decodes a bulk body (after any Content-Encoding) into records and items.
/// `index` is the path's (`/<index>/_bulk`), for actions that name none.
///
/// # Errors
/// [`ParseError`] when the body is empty, or an action line is not an action
/// (or an action's document line is missing).
pub fn decode(
    body: &[u8],
    index: Option<&str>,
    received_at: DateTime<Utc>,
    tenant: &str,
) -> Result<Bulk, ParseError> {
    let mut lines = body
        .split(|&b| b == b'\n')
        .enumerate()
        .filter(|(_, l)| !l.trim_ascii().is_empty());
    let mut out = Bulk::default();
    while let Some((n, line)) = lines.next() {
        let action: Action = serde_json::from_slice(line)
            .map_err(|e| ParseError::Syntax(format!("line {}: not a bulk action: {e}", n + 1)))?;
        let (op, meta) = match action {
            Action { index: Some(m), .. } => (Op::Index, m),
            Action {
                create: Some(m), ..
            } => (Op::Create, m),
            Action {
                update: Some(m), ..
            } => (Op::Update, m),
            Action {
                delete: Some(m), ..
            } => (Op::Delete, m),
            _ => {
                return Err(ParseError::Syntax(format!(
                    "line {}: expected an index, create, update or delete action",
                    n + 1
                )))
            }
        };
        let mut item = Item {
            op,
            index: meta.index.or(index.map(str::to_owned)).unwrap_or_default(),
            id: meta.id.map(|id| match id {
                Value::String(s) => s,
                other => other.to_string(),
            }),
            error: None,
        };
        if op != Op::Delete {
            let Some((_, doc)) = lines.next() else {
                return Err(ParseError::Syntax(format!(
                    "line {}: the {} action has no document line",
                    n + 1,
                    op.name()
                )));
            };
            let named = match item.index.as_str() {
                "" => Ok(()),
                name => check_index(name),
            };
            if let Err(e) = named {
                item.index.clear();
                item.error = Some(e);
            } else if matches!(op, Op::Index | Op::Create) {
                match document(doc, &item.index, received_at, tenant) {
                    Ok((record, replaced)) => {
                        out.parsed.nul_replaced += usize::from(replaced.nul);
                        out.parsed.invalid_utf8 += usize::from(replaced.utf8);
                        out.parsed.records.push(record);
                    }
                    Err(e) => item.error = Some(e),
                }
            }
        }
        if matches!(op, Op::Update | Op::Delete) {
            item.error = Some(format!(
                "{}: chute stores log records and does not change them; only index and create",
                op.name()
            ));
        }
        if let Some(error) = &item.error {
            out.parsed.reject(out.items.len(), error.clone());
        }
        out.items.push(item);
    }
    if out.items.is_empty() {
        return Err(ParseError::Empty);
    }
    Ok(out)
}

struct Replaced {
    nul: bool,
    utf8: bool,
}

fn document(
    line: &[u8],
    index: &str,
    received_at: DateTime<Utc>,
    tenant: &str,
) -> Result<(Record, Replaced), String> {
    // serde_json refuses invalid UTF-8: replace it first, copying only then.
    let (text, utf8) = match std::str::from_utf8(line) {
        Ok(text) => (std::borrow::Cow::Borrowed(text), false),
        Err(_) => (std::borrow::Cow::Owned(lossy_utf8(line).0), true),
    };
    let mut doc = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(doc)) => doc,
        Ok(other) => {
            return Err(format!(
                "the document is {}, not an object",
                json_kind(&other)
            ))
        }
        Err(e) => return Err(format!("the document is not JSON: {e}")),
    };
    // Vector's bulk mode names it `timestamp`.
    let ts = match doc.remove("@timestamp") {
        Some(at) => timestamp(Some(at), received_at)?,
        None => match doc
            .get("timestamp")
            .map(|t| timestamp(Some(t.clone()), received_at))
        {
            Some(Ok(ts)) => {
                doc.remove("timestamp");
                ts
            }
            _ => received_at,
        },
    };
    let message = match doc.remove("message").or_else(|| take_text(&mut doc, "log")) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    let host = take_ecs(&mut doc, "host.name")
        .or_else(|| take_text(&mut doc, "host"))
        .or_else(|| take_text(&mut doc, "hostname"))
        .map(text_of);
    let app = take_ecs(&mut doc, "service.name")
        .or_else(|| take_text(&mut doc, "app"))
        .map(text_of);
    let severity = take_level(&mut doc);
    let procid = take_pid(&mut doc);
    for (name, value) in [("host", &host), ("app", &app)] {
        if value.as_ref().is_some_and(|v| v.len() > MAX_NAME_BYTES) {
            return Err(format!("{name}: longer than {MAX_NAME_BYTES} bytes"));
        }
    }
    if !index.is_empty() {
        doc.insert("_index".into(), Value::String(index.to_owned()));
    }
    let mut record = Record {
        ts,
        received_at,
        tenant: tenant.to_owned(),
        host,
        app,
        procid,
        msgid: None,
        severity,
        facility: None,
        message,
        fields: doc,
        sd: None,
    };
    // Raw NUL cannot be in JSON text; only its escape makes one.
    let nul = text.contains(JSON_NUL_ESCAPE) && record.scrub() > 0;
    Ok((record, Replaced { nul, utf8 }))
}

/// `object.key` of an ECS document, as `{"object": {"key": "..."}}` or as the
/// dotted key `"object.key"`, when it is a string; taken out of the document
/// (an object left empty goes too).
fn take_ecs(doc: &mut Map<String, Value>, dotted: &str) -> Option<Value> {
    let (object, key) = dotted.split_once('.')?;
    if let Some(Value::Object(inner)) = doc.get_mut(object) {
        if inner.get(key).is_some_and(Value::is_string) {
            let taken = inner.remove(key);
            if inner.is_empty() {
                doc.remove(object);
            }
            return taken;
        }
    }
    take_text(doc, dotted)
}

/// ECS `process.pid` (a number or digits), syslog's PROCID; taken out.
fn take_pid(doc: &mut Map<String, Value>) -> Option<String> {
    let Some(Value::Object(process)) = doc.get_mut("process") else {
        return None;
    };
    let pid = match process.get("pid") {
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        Some(Value::String(s))
            if !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.clone()
        }
        _ => return None,
    };
    process.remove("pid");
    if process.is_empty() {
        doc.remove("process");
    }
    Some(pid)
}

/// `doc[key]` when it is a string, taken out of the document.
fn take_text(doc: &mut Map<String, Value>, key: &str) -> Option<Value> {
    if doc.get(key).is_some_and(Value::is_string) {
        doc.remove(key)
    } else {
        None
    }
}

/// The severity of ECS `log.level`, else `level`, else `severity`, when it is a
/// level name; that key is taken out of the document (any other value stays).
fn take_level(doc: &mut Map<String, Value>) -> Option<i16> {
    let known = |v: Option<&Value>| v.and_then(Value::as_str).and_then(level_severity);
    if let Some(Value::Object(log)) = doc.get_mut("log") {
        if let Some(s) = known(log.get("level")) {
            log.remove("level");
            if log.is_empty() {
                doc.remove("log");
            }
            return Some(s);
        }
    }
    ["log.level", "level", "severity"]
        .into_iter()
        .find_map(|key| {
            let s = known(doc.get(key))?;
            doc.remove(key);
            Some(s)
        })
}

fn text_of(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// `@timestamp` as Elasticsearch's default date format reads it
/// (`strict_date_optional_time||epoch_millis`); absent: the time of receipt.
fn timestamp(v: Option<Value>, received_at: DateTime<Utc>) -> Result<DateTime<Utc>, String> {
    let millis = |ms: i64| {
        DateTime::from_timestamp_millis(ms)
            .filter(|t| (1..=9999).contains(&chrono::Datelike::year(t)))
            .ok_or_else(|| format!("@timestamp: {ms} ms is outside years 1-9999"))
    };
    match v {
        None | Some(Value::Null) => Ok(received_at),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(ms) => millis(ms),
            None => Err(format!("@timestamp: {n} is not whole epoch milliseconds")),
        },
        Some(Value::String(s)) => {
            if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
                return s
                    .parse()
                    .map_err(|_| format!("@timestamp: {s:?} is out of range"))
                    .and_then(millis);
            }
            DateTime::parse_from_rfc3339(&s)
                .map(|t| t.with_timezone(&Utc))
                .or_else(|_| {
                    NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S%.f").map(|t| t.and_utc())
                })
                .or_else(|_| {
                    NaiveDate::parse_from_str(&s, "%Y-%m-%d")
                        .map(|d| d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
                })
                .map_err(|_| {
                    let quoted: String = s.chars().take(64).collect();
                    format!("@timestamp: {quoted:?} is not a date (RFC 3339 or epoch milliseconds)")
                })
                .and_then(|t| {
                    if (1..=9999).contains(&chrono::Datelike::year(&t)) {
                        Ok(t)
                    } else {
                        Err(format!("@timestamp: {s:?} is outside years 1-9999"))
                    }
                })
        }
        Some(other) => Err(format!(
            "@timestamp: expected a date, got {}",
            json_kind(&other)
        )),
    }
}

#[cfg(test)]
#[path = "bulk_tests.rs"]
mod tests;
