//! The per-day label index, `chute.label_values`: which values each label had on
//! each day, per tenant, written in the same transaction as the rows.
//!
//! The read API's label browser (`labels`, `label/<name>/values` without a
//! selector) reads this small table instead of finding the distinct values of a
//! day's rows. Each writer remembers the keys it has committed ([`Known`]), so a
//! write only inserts keys new to it: on a steady day that is none, and the index
//! costs nothing but reading the labels of the rows in place. `procid` is left
//! out: it has a value per process, too many to be worth listing. Severity and
//! facility are kept as their codes.

use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;

use chrono::NaiveDate;
use deadpool_postgres::Transaction;

use crate::batch::RowLabels;

/// Keys a writer remembers before it starts over (about 100 bytes each).
const MAX_KNOWN: usize = 200_000;

/// Inserts the keys, each once; the keys arrive sorted, so writers inserting the
/// same new keys at once wait for each other in one order and never deadlock.
const INSERT: &str = "INSERT INTO chute.label_values (day, tenant, label, value) \
    SELECT * FROM unnest($1::date[], $2::text[], $3::text[], $4::text[]) \
    ON CONFLICT DO NOTHING";

/// One row of `chute.label_values`: days since 1970-01-01, tenant, the column
/// (a fixed name), the value.
pub type Key = (i32, String, &'static str, String);

/// A label's value as a row holds it: text, or a code (severity, facility).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Value<'a> {
    Text(&'a str),
    Code(i16),
}

impl Value<'_> {
    fn is_empty(&self) -> bool {
        matches!(self, Value::Text(""))
    }
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Text(t) => f.write_str(t),
            Value::Code(c) => write!(f, "{c}"),
        }
    }
}

/// The keys one writer has committed.
#[derive(Default)]
pub struct Known(Mutex<HashSet<Key>>);

impl Known {
    /// The keys of `rows` this writer has not committed, sorted. The rows' keys
    /// are gathered borrowed from the rows first; only the distinct ones (some
    /// hundreds a write) are looked up and copied.
    pub fn new_keys<'r>(&self, rows: &[RowLabels<'r>]) -> Vec<Key> {
        let mut seen: HashSet<(i32, &'r str, &'static str, Value<'r>)> = HashSet::new();
        for l in rows {
            let mut add = |column: &'static str, value: Option<Value<'r>>| {
                if let Some(v) = value.filter(|v| !v.is_empty()) {
                    seen.insert((l.day, l.tenant, column, v));
                }
            };
            add("tenant", Some(Value::Text(l.tenant)));
            add("host", l.host.map(Value::Text));
            add("app", l.app.map(Value::Text));
            add("msgid", l.msgid.map(Value::Text));
            add("severity", l.severity.map(Value::Code));
            add("facility", l.facility.map(Value::Code));
        }
        let known = self.0.lock().expect("label keys lock");
        let fresh: BTreeSet<Key> = seen
            .into_iter()
            .map(|(day, tenant, column, value)| (day, tenant.to_owned(), column, value.to_string()))
            .filter(|key| !known.contains(key))
            .collect();
        fresh.into_iter().collect()
    }

    /// Forgets every key: retention removed some from the index, and a late
    /// record must put its keys back.
    pub fn forget_all(&self) {
        self.0.lock().expect("label keys lock").clear();
    }

    /// Remembers keys whose transaction committed.
    pub fn committed(&self, keys: Vec<Key>) {
        let mut known = self.0.lock().expect("label keys lock");
        if known.len() + keys.len() > MAX_KNOWN {
            known.clear();
        }
        known.extend(keys);
    }
}

/// Inserts `keys` in `tx` (nothing when there are none).
///
/// # Errors
/// As PostgreSQL answers.
pub async fn insert(tx: &Transaction<'_>, keys: &[Key]) -> Result<(), tokio_postgres::Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let days: Vec<NaiveDate> = keys
        .iter()
        .map(|k| epoch + chrono::Days::new(u64::try_from(k.0).unwrap_or(0)))
        .collect();
    let tenants: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
    let labels: Vec<&str> = keys.iter().map(|k| k.2).collect();
    let values: Vec<&str> = keys.iter().map(|k| k.3.as_str()).collect();
    let insert = tx.prepare_cached(INSERT).await?;
    tx.execute(&insert, &[&days, &tenants, &labels, &values])
        .await?;
    Ok(())
}
