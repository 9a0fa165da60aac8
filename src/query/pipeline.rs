//! The stages of a LogQL pipeline that PostgreSQL does not run (the planner's
//! residual), evaluated on one entry at a time as Loki evaluates them.
//!
//! [`Pipeline::new`] compiles the stages once per query (regular expressions,
//! `line_format` templates), answering a [`QueryError`] that points at the offending
//! text; [`Pipeline::process`] then runs them on every row, in order, and answers
//! `None` as soon as a filter drops the entry.
//!
//! A stage sees a label's value in `parsed`, then `metadata`, then the stream
//! `labels` (parsed labels take precedence in Loki too). Stages that fail on an
//! entry do not drop it: like Loki, they set the parsed labels `__error__` and
//! `__error_details__`, which a label filter (`| __error__ = ""`) may test.
//!
//! Where Loki's documentation and its engine disagree, this follows the engine:
//! - `and` binds tighter than `or` (the parser already groups them that way), and
//!   every operand of an `and` is evaluated (so a conversion error on its right sets
//!   `__error__` even when its left is false); `or` stops at its first true operand.
//! - A key extracted twice (`{"a":1,"a":2}`, or `| json | logfmt`) keeps the last
//!   value.
//! - `| logfmt` without flags is Loki's default mode: malformed pairs are skipped
//!   (no `__error__`) and keys without a value are left out; `LogfmtParserErr` is
//!   only set by the strict mode, which the parser does not offer yet (`--strict`).

use std::collections::BTreeMap;
use std::fmt;

use chute_logql::{
    Bytes, CompareOp, Duration, FilterValue, LabelCompare, LabelFilter, LineFilter, LineFilterOp,
    Span, Stage, StageKind,
};
use regex::Regex;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::QueryError;

/// The label a stage sets when it fails on an entry (its value names the stage).
pub const ERROR_LABEL: &str = "__error__";
/// What went wrong, beside [`ERROR_LABEL`].
pub const ERROR_DETAILS_LABEL: &str = "__error_details__";

const JSON_PARSER_ERR: &str = "JSONParserErr";
const LOGFMT_PARSER_ERR: &str = "LogfmtParserErr";
const LABEL_FILTER_ERR: &str = "LabelFilterErr";
/// Appended to an extracted label's name when a stream label already has it.
const DUPLICATE_SUFFIX: &str = "_extracted";
/// Objects nested deeper than this in a JSON line make it a `JSONParserErr`.
const MAX_JSON_DEPTH: usize = 128;

/// One log entry on its way through a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    /// Nanoseconds since the epoch.
    pub ts: i64,
    /// Stream labels (tenant, host, app, level, ...), only those with a value.
    pub labels: BTreeMap<String, String>,
    /// Structured metadata: the record's `fields`, flattened to strings.
    pub metadata: BTreeMap<String, String>,
    /// Labels extracted by `json`/`logfmt`, and `__error__`/`__error_details__`.
    pub parsed: BTreeMap<String, String>,
    /// The log line.
    pub line: String,
}

impl Entry {
    /// The value of label `name` as stages see it: parsed, then structured metadata,
    /// then stream labels.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.parsed
            .get(name)
            .or_else(|| self.metadata.get(name))
            .or_else(|| self.labels.get(name))
            .map(String::as_str)
    }

    /// Records a label a parser found, under its sanitised `name`: `_extracted` is
    /// appended when a stream label has that name, and the value hides any
    /// structured metadata of the same name (which Loki removes).
    fn extract(&mut self, mut name: String, value: String) {
        if name.is_empty() {
            return;
        }
        if self.labels.contains_key(&name) {
            name.push_str(DUPLICATE_SUFFIX);
        }
        self.metadata.remove(&name);
        self.parsed.insert(name, value);
    }

    fn set_error(&mut self, error: &str, details: String) {
        self.parsed
            .insert(ERROR_LABEL.to_string(), error.to_string());
        self.parsed.insert(ERROR_DETAILS_LABEL.to_string(), details);
    }
}

/// How a record's `fields` become structured metadata: top-level keys only; strings
/// as they are, `null` as "", anything else (numbers, booleans, arrays, objects) as
/// its compact JSON text.
pub fn flatten_fields(
    fields: &serde_json::Map<String, serde_json::Value>,
) -> BTreeMap<String, String> {
    use serde_json::Value;
    fields
        .iter()
        .map(|(key, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (key.clone(), text)
        })
        .collect()
}

/// The compiled stages of a pipeline.
#[derive(Debug)]
pub struct Pipeline {
    stages: Vec<Compiled>,
}

#[derive(Debug)]
enum Compiled {
    Line(LineMatcher),
    Json,
    Logfmt(LogfmtMode),
    Label(Filter),
    Format(Template),
    Drop(Vec<String>),
    Keep(Vec<String>),
}

impl Pipeline {
    /// Compiles `stages` (regexes, templates); errors name the stage's position in `query`.
    pub fn new(stages: &[Stage], query: &str) -> Result<Pipeline, QueryError> {
        let stages = stages
            .iter()
            .map(|stage| compile_stage(stage, query))
            .collect::<Result<_, _>>()?;
        Ok(Pipeline { stages })
    }

    /// Whether there is no stage to run (every entry passes unchanged).
    pub fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Runs every stage; `None` when a filter drops the entry.
    pub fn process(&self, mut entry: Entry) -> Option<Entry> {
        for stage in &self.stages {
            match stage {
                Compiled::Line(matcher) => {
                    if !matcher.matches(&entry.line) {
                        return None;
                    }
                }
                Compiled::Json => parse_json(&mut entry),
                Compiled::Logfmt(mode) => parse_logfmt(&mut entry, *mode),
                Compiled::Label(filter) => {
                    if !filter.eval(&mut entry) {
                        return None;
                    }
                }
                Compiled::Format(template) => entry.line = template.render(&entry),
                Compiled::Drop(names) => {
                    // `drop __error__` leaves `__error_details__`, as in Loki.
                    for name in names {
                        entry.labels.remove(name);
                        entry.metadata.remove(name);
                        entry.parsed.remove(name);
                    }
                }
                Compiled::Keep(names) => {
                    let kept = |name: &String| names.contains(name);
                    entry.labels.retain(|name, _| kept(name));
                    entry.metadata.retain(|name, _| kept(name));
                    // Loki's keep never removes the error labels; drop does.
                    entry.parsed.retain(|name, _| {
                        kept(name) || name == ERROR_LABEL || name == ERROR_DETAILS_LABEL
                    });
                }
            }
        }
        Some(entry)
    }
}

fn compile_stage(stage: &Stage, query: &str) -> Result<Compiled, QueryError> {
    Ok(match &stage.kind {
        StageKind::LineFilter(filter) => Compiled::Line(LineMatcher::new(filter, query)?),
        StageKind::Json => Compiled::Json,
        StageKind::Logfmt => Compiled::Logfmt(LogfmtMode::default()),
        StageKind::LabelFilter(filter) => Compiled::Label(Filter::new(filter, query)?),
        StageKind::LineFormat(template) => {
            Compiled::Format(Template::parse(&template.value).map_err(|m| {
                QueryError::at(query, template.span, format_args!("line_format: {m}"))
            })?)
        }
        StageKind::Drop(names) => Compiled::Drop(names.clone()),
        StageKind::Keep(names) => Compiled::Keep(names.clone()),
    })
}

fn compile_regex(re: &str, anchored: bool, span: Span, query: &str) -> Result<Regex, QueryError> {
    super::regex::compile(re, anchored).map_err(|e| QueryError::at(query, span, e))
}

// Line filters

/// `|= "a" or "b"` and the like, on the current line.
#[derive(Debug)]
struct LineMatcher {
    /// `!=` and `!~`: the line passes when it matches none of the values.
    negated: bool,
    needles: Needles,
}

#[derive(Debug)]
enum Needles {
    Substrings(Vec<String>),
    /// Unanchored: a match anywhere in the line.
    Regexes(Vec<Regex>),
}

impl LineMatcher {
    fn new(filter: &LineFilter, query: &str) -> Result<LineMatcher, QueryError> {
        let needles = match filter.op {
            LineFilterOp::Contains | LineFilterOp::NotContains => {
                Needles::Substrings(filter.values.iter().map(|v| v.value.clone()).collect())
            }
            LineFilterOp::Matches | LineFilterOp::NotMatches => Needles::Regexes(
                filter
                    .values
                    .iter()
                    .map(|v| compile_regex(&v.value, false, v.span, query))
                    .collect::<Result<_, _>>()?,
            ),
        };
        let negated = matches!(
            filter.op,
            LineFilterOp::NotContains | LineFilterOp::NotMatches
        );
        Ok(LineMatcher { negated, needles })
    }

    fn matches(&self, line: &str) -> bool {
        let any = match &self.needles {
            Needles::Substrings(all) => all.iter().any(|s| line.contains(s.as_str())),
            Needles::Regexes(all) => all.iter().any(|re| re.is_match(line)),
        };
        any != self.negated
    }
}

// Label filters

#[derive(Debug)]
enum Filter {
    Compare { name: String, test: Test },
    And(Vec<Filter>),
    Or(Vec<Filter>),
}

#[derive(Debug)]
enum Test {
    Equal(String),
    NotEqual(String),
    /// Anchored: the regular expression must match the whole value.
    Matches(Regex),
    NotMatches(Regex),
    Number(CompareOp, f64),
    Duration(CompareOp, i64),
    Bytes(CompareOp, u64),
}

impl Filter {
    fn new(filter: &LabelFilter, query: &str) -> Result<Filter, QueryError> {
        let all = |filters: &[LabelFilter]| {
            filters
                .iter()
                .map(|f| Filter::new(f, query))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(match filter {
            LabelFilter::Compare(compare) => Filter::compare(compare, query)?,
            LabelFilter::And(filters) => Filter::And(all(filters)?),
            LabelFilter::Or(filters) => Filter::Or(all(filters)?),
        })
    }

    fn compare(c: &LabelCompare, query: &str) -> Result<Filter, QueryError> {
        let test = match (&c.value, c.op) {
            (FilterValue::String(s), CompareOp::Eq) => Test::Equal(s.clone()),
            (FilterValue::String(s), CompareOp::Ne) => Test::NotEqual(s.clone()),
            (FilterValue::String(s), CompareOp::Re) => {
                Test::Matches(compile_regex(s, true, c.value_span, query)?)
            }
            (FilterValue::String(s), CompareOp::NotRe) => {
                Test::NotMatches(compile_regex(s, true, c.value_span, query)?)
            }
            (FilterValue::String(_), _) => {
                let message = "this comparison needs a number, a duration or a byte size";
                return Err(QueryError::at(query, c.value_span, message));
            }
            (_, CompareOp::Re | CompareOp::NotRe) => {
                let message = "a regular expression must be a string";
                return Err(QueryError::at(query, c.value_span, message));
            }
            (FilterValue::Number(n), op) => Test::Number(op, *n),
            (FilterValue::Duration(d), op) => Test::Duration(op, d.as_nanos()),
            (FilterValue::Bytes(b), op) => Test::Bytes(op, b.0),
        };
        Ok(Filter::Compare {
            name: c.name.clone(),
            test,
        })
    }

    /// Whether the entry passes; may set `__error__` on it (see [`Test::eval`]).
    fn eval(&self, entry: &mut Entry) -> bool {
        match self {
            Filter::Compare { name, test } => test.eval(name, entry),
            // Every operand runs, as in Loki, so each may record its error.
            Filter::And(all) => all.iter().fold(true, |ok, f| ok & f.eval(entry)),
            Filter::Or(any) => any.iter().any(|f| f.eval(entry)),
        }
    }
}

impl Test {
    /// String tests compare the value, "" when the label is absent. The others
    /// convert it: an absent label drops the entry, and a value that does not convert
    /// keeps it with `__error__="LabelFilterErr"` (unless it already has an error).
    fn eval(&self, name: &str, entry: &mut Entry) -> bool {
        let value = entry.get(name).unwrap_or("");
        let converted = match self {
            Test::Equal(want) => return value == want.as_str(),
            Test::NotEqual(want) => return value != want.as_str(),
            Test::Matches(re) => return re.is_match(value),
            Test::NotMatches(re) => return !re.is_match(value),
            Test::Number(op, want) => convert(entry, name, |v| {
                v.parse::<f64>()
                    .map(|v| compare(*op, v, *want))
                    .map_err(|_| format!("cannot parse {v:?} as a number"))
            }),
            Test::Duration(op, want) => convert(entry, name, |v| {
                Duration::parse(v.strip_prefix('+').unwrap_or(v))
                    .map(|d| compare(*op, d.as_nanos(), *want))
                    .map_err(|e| format!("cannot parse {v:?} as a duration: {e}"))
            }),
            Test::Bytes(op, want) => convert(entry, name, |v| {
                parse_bytes(v)
                    .map(|b| compare(*op, b, *want))
                    .map_err(|e| format!("cannot parse {v:?} as a byte size: {e}"))
            }),
        };
        match converted {
            None => false,
            Some(Ok(passes)) => passes,
            Some(Err(details)) => {
                // Don't overwrite what might be a more useful error (Loki).
                if !entry.parsed.contains_key(ERROR_LABEL) {
                    entry.set_error(LABEL_FILTER_ERR, details);
                }
                true
            }
        }
    }
}

/// `test` on the label's value; `None` when the label is absent. The error labels
/// are absent here: in Loki only string filters can read them.
fn convert(
    entry: &Entry,
    name: &str,
    test: impl FnOnce(&str) -> Result<bool, String>,
) -> Option<Result<bool, String>> {
    if name == ERROR_LABEL || name == ERROR_DETAILS_LABEL {
        return None;
    }
    entry.get(name).map(test)
}

/// `a op b`; with NaN every comparison but `!=` is false, as in Go.
fn compare<T: PartialOrd>(op: CompareOp, a: T, b: T) -> bool {
    match op {
        CompareOp::Eq => a == b,
        CompareOp::Ne => a != b,
        CompareOp::Gt => a > b,
        CompareOp::Ge => a >= b,
        CompareOp::Lt => a < b,
        CompareOp::Le => a <= b,
        CompareOp::Re | CompareOp::NotRe => false,
    }
}

/// A label's value as a byte size, as leniently as Loki reads it (go-humanize):
/// commas in the number, blanks before the unit, units in any case, and no unit
/// for bytes (`1,024`, `10 mb`, `512`).
fn parse_bytes(text: &str) -> Result<u64, String> {
    let number_len = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
        .unwrap_or(text.len());
    let number = text[..number_len].replace(',', "");
    let unit = text[number_len..].trim().to_ascii_lowercase();
    let (unit, times) = match unit.as_str() {
        "" | "b" => ("B", 1),
        "k" | "kb" => ("kB", 1),
        "ki" | "kib" => ("KiB", 1),
        "m" | "mb" => ("MB", 1),
        "mi" | "mib" => ("MiB", 1),
        "g" | "gb" => ("GB", 1),
        "gi" | "gib" => ("GiB", 1),
        "t" | "tb" => ("TB", 1),
        "ti" | "tib" => ("TiB", 1),
        "p" | "pb" => ("PB", 1),
        "pi" | "pib" => ("PiB", 1),
        "e" | "eb" => ("PB", 1000),
        "ei" | "eib" => ("PiB", 1024),
        _ => return Err(format!("unknown unit {unit:?}")),
    };
    let Bytes(bytes) = Bytes::parse(&format!("{number}{unit}"))?;
    bytes
        .checked_mul(times)
        .ok_or_else(|| "too large for 64 bits".to_string())
}

// Parsers

/// A JSON key as part of a label name: trimmed, `_` for every character outside
/// `[a-zA-Z0-9_]`, and a `_` before a leading digit (Loki does this at every level
/// of nesting). Nested keys are joined with `_`; a key that is blank adds nothing.
fn join_key(prefix: &str, key: &str) -> String {
    let mut name = prefix.to_string();
    let key = key.trim();
    if key.is_empty() {
        return name;
    }
    if !name.is_empty() {
        name.push('_');
    }
    if key.starts_with(|c: char| c.is_ascii_digit()) {
        name.push('_');
    }
    name.extend(key.chars().map(|c| match c {
        'a'..='z' | 'A'..='Z' | '0'..='9' | '_' => c,
        _ => '_',
    }));
    name
}

/// `| json`: every scalar of a JSON object becomes a parsed label. Strings are
/// unescaped, numbers kept as written, booleans `true`/`false`; nested objects are
/// flattened (`{"a":{"b":1}}` gives `a_b`); arrays and nulls are skipped. Text after
/// the object is ignored. A line that is not an object gets `JSONParserErr` and keeps
/// the labels found before the error, as Loki's streaming parser does.
fn parse_json(entry: &mut Entry) {
    let mut found = Vec::new();
    let result = JsonObject {
        prefix: "",
        depth: 0,
        out: &mut found,
    }
    .deserialize(&mut serde_json::Deserializer::from_str(&entry.line));
    for (name, value) in found {
        entry.extract(name, value);
    }
    if let Err(e) = result {
        entry.set_error(JSON_PARSER_ERR, e.to_string());
    }
}

/// Reads one JSON object, pushing `(label name, value)` in document order.
struct JsonObject<'a> {
    prefix: &'a str,
    depth: usize,
    out: &'a mut Vec<(String, String)>,
}

impl<'de> DeserializeSeed<'de> for JsonObject<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for JsonObject<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<String>()? {
            // Raw values keep numbers exactly as written (`1.50`, `1e3`).
            let raw: &'de RawValue = map.next_value()?;
            let text = raw.get().trim_start();
            let name = join_key(self.prefix, &key);
            match text.as_bytes().first() {
                Some(b'{') => {
                    if self.depth + 1 >= MAX_JSON_DEPTH {
                        let message = "objects nested too deeply";
                        return Err(<A::Error as de::Error>::custom(message));
                    }
                    JsonObject {
                        prefix: &name,
                        depth: self.depth + 1,
                        out: &mut *self.out,
                    }
                    .deserialize(&mut serde_json::Deserializer::from_str(text))
                    .map_err(<A::Error as de::Error>::custom)?;
                }
                Some(b'"') => {
                    let value: String =
                        serde_json::from_str(text).map_err(<A::Error as de::Error>::custom)?;
                    self.out.push((name, value));
                }
                Some(b'[' | b'n') | None => {}
                Some(_) => self.out.push((name, text.to_string())),
            }
        }
        Ok(())
    }
}

/// How `| logfmt` treats what is not a plain `key=value` (Loki's flags).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct LogfmtMode {
    /// `--strict`: stop at the first malformed pair with `LogfmtParserErr`, rather
    /// than skip it.
    strict: bool,
    /// `--keep-empty`: keep keys without a value (as ""), rather than leave them out.
    keep_empty: bool,
}

/// `| logfmt`: `key=value`, `key="quoted value"` with JSON escapes, bare `key`.
/// Hand-written (about as long as the glue a crate would need) so that it follows
/// Loki's decoder exactly: where a pair ends, what is malformed, and how a
/// malformed pair is skipped.
fn parse_logfmt(entry: &mut Entry, mode: LogfmtMode) {
    let mut found = Vec::new();
    let mut error = None;
    for pair in (LogfmtPairs {
        line: &entry.line,
        pos: 0,
    }) {
        match pair {
            Ok((key, value)) => {
                if mode.keep_empty || !value.is_empty() {
                    found.push((join_key("", key), value));
                }
            }
            Err(e) if mode.strict => {
                error = Some(e);
                break;
            }
            Err(_) => {}
        }
    }
    for (name, value) in found {
        entry.extract(name, value);
    }
    if let Some(details) = error {
        entry.set_error(LOGFMT_PARSER_ERR, details);
    }
}

/// The pairs of a logfmt line, each a key and its (unquoted) value, or why it is
/// malformed. After a malformed pair the scan goes on at the next blank.
struct LogfmtPairs<'a> {
    line: &'a str,
    pos: usize,
}

type LogfmtPair<'a> = Result<(&'a str, String), String>;

impl<'a> LogfmtPairs<'a> {
    /// An error about the byte at `pos` (1-based in the message, as Loki's).
    fn error(&self, message: &str) -> String {
        let at = self.pos + 1;
        format!("logfmt syntax error at pos {at} : {message}")
    }

    /// The error `message`, after skipping to the next blank.
    fn skip(&mut self, message: &str) -> LogfmtPair<'a> {
        let error = self.error(message);
        let line = self.line;
        let bytes = line.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos] > b' ' {
            self.pos += 1;
        }
        Err(error)
    }

    fn value(&mut self, key: &'a str) -> LogfmtPair<'a> {
        let line = self.line;
        let bytes = line.as_bytes();
        let start = self.pos;
        while let Some(&c) = bytes.get(self.pos) {
            match c {
                b'=' => return self.skip("unexpected '='"),
                b'"' => return self.skip("unexpected '\"'"),
                c if c <= b' ' => break,
                _ => self.pos += 1,
            }
        }
        Ok((key, line[start..self.pos].to_string()))
    }

    fn quoted(&mut self, key: &'a str) -> LogfmtPair<'a> {
        let line = self.line;
        let bytes = line.as_bytes();
        let start = self.pos;
        let (mut escaped, mut has_escapes) = (false, false);
        for (i, &c) in bytes.iter().enumerate().skip(start + 1) {
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                (escaped, has_escapes) = (true, true);
            } else if c == b'"' {
                self.pos = i + 1;
                let quoted = &line[start..self.pos];
                if !has_escapes {
                    return Ok((key, quoted[1..quoted.len() - 1].to_string()));
                }
                // JSON's escapes, as Loki's decoder reads them (it also takes `\'`).
                return match serde_json::from_str::<String>(quoted) {
                    Ok(value) => Ok((key, value)),
                    Err(_) => Err(self.error("invalid quoted value")),
                };
            }
        }
        self.pos = bytes.len();
        Err(self.error("unterminated quoted value"))
    }
}

impl<'a> Iterator for LogfmtPairs<'a> {
    type Item = LogfmtPair<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let line = self.line;
        let bytes = line.as_bytes();
        while self.pos < bytes.len() && bytes[self.pos] <= b' ' {
            self.pos += 1;
        }
        if self.pos >= bytes.len() {
            return None;
        }
        let start = self.pos;
        while let Some(&c) = bytes.get(self.pos) {
            match c {
                b'=' if self.pos == start => return Some(self.skip("unexpected '='")),
                b'=' => break,
                b'"' => return Some(self.skip("unexpected '\"'")),
                c if c <= b' ' => return Some(Ok((&line[start..self.pos], String::new()))),
                _ => self.pos += 1,
            }
        }
        let key = &line[start..self.pos];
        if self.pos >= bytes.len() {
            return Some(Ok((key, String::new())));
        }
        self.pos += 1; // past '='
        Some(match bytes.get(self.pos) {
            None => Ok((key, String::new())),
            Some(&c) if c <= b' ' => Ok((key, String::new())),
            Some(b'"') => self.quoted(key),
            Some(_) => self.value(key),
        })
    }
}

// line_format

/// The subset of Go's text/template that `line_format` accepts: text, `{{.label}}`
/// (spaces inside the braces allowed; an absent label prints ""), `{{__line__}}`,
/// `{{__timestamp__}}`, and the trim markers `{{- ` and ` -}}`.
#[derive(Debug)]
struct Template {
    parts: Vec<Part>,
}

#[derive(Debug)]
enum Part {
    Text(String),
    Label(String),
    Line,
    Timestamp,
}

/// Go templates trim these around `{{- ` and ` -}}`.
fn is_go_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

impl Template {
    /// The template, or why chute cannot run it.
    fn parse(text: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = text;
        let mut trim_next = false;
        while let Some(open) = rest.find("{{") {
            let mut literal = &rest[..open];
            if trim_next {
                literal = literal.trim_start_matches(is_go_space);
            }
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err("unclosed action: \"{{\" without \"}}\"".to_string());
            };
            let mut inner = &after[..close];
            if let Some(s) = inner
                .strip_prefix('-')
                .filter(|s| s.starts_with(is_go_space))
            {
                literal = literal.trim_end_matches(is_go_space);
                inner = s;
            }
            trim_next = false;
            if let Some(s) = inner.strip_suffix('-').filter(|s| s.ends_with(is_go_space)) {
                trim_next = true;
                inner = s;
            }
            if !literal.is_empty() {
                parts.push(Part::Text(literal.to_string()));
            }
            let action = inner.trim_matches(is_go_space);
            let part = match action {
                "__line__" => Part::Line,
                "__timestamp__" => Part::Timestamp,
                _ => match action.strip_prefix('.').filter(|n| is_label_name(n)) {
                    Some(name) => Part::Label(name.to_string()),
                    None => {
                        return Err(format!(
                            "unsupported template action {{{{{action}}}}}: chute supports \
                             only {{{{.label}}}}, {{{{__line__}}}} and {{{{__timestamp__}}}}"
                        ))
                    }
                },
            };
            parts.push(part);
            rest = &after[close + 2..];
        }
        if trim_next {
            rest = rest.trim_start_matches(is_go_space);
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts })
    }

    fn render(&self, entry: &Entry) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(text) => out.push_str(text),
                Part::Label(name) => out.push_str(entry.get(name).unwrap_or("")),
                Part::Line => out.push_str(&entry.line),
                Part::Timestamp => out.push_str(&go_time(entry.ts)),
            }
        }
        out
    }
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// How Go prints a `time.Time` in UTC (what `{{__timestamp__}}` shows in Loki):
/// `2006-01-02 15:04:05.999999999 +0000 UTC`, the fraction without trailing zeros.
fn go_time(ts: i64) -> String {
    let time = chrono::DateTime::from_timestamp_nanos(ts);
    let mut text = time.format("%Y-%m-%d %H:%M:%S").to_string();
    let nanos = time.timestamp_subsec_nanos();
    if nanos != 0 {
        let fraction = format!("{nanos:09}");
        text.push('.');
        text.push_str(fraction.trim_end_matches('0'));
    }
    text.push_str(" +0000 UTC");
    text
}

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
