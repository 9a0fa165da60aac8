//! The messages of OTLP logs, as opentelemetry-proto publishes them
//! (`opentelemetry/proto/collector/logs/v1/logs_service.proto`, `logs/v1`,
//! `common/v1`, `resource/v1`, and `google/rpc/status.proto` for errors): only
//! what a logs export carries, with the same field numbers and types, so any
//! sender's bytes decode here as the Collector decodes them.
//!
//! The same types read OTLP/JSON (opentelemetry-proto `docs/specification.md`,
//! "JSON Protobuf Encoding"): field names in lowerCamelCase (the proto names are
//! accepted too), 64-bit integers as strings or numbers, enums as numbers or
//! names, `traceId` and `spanId` as hex (not base64), `bytesValue` as base64, and
//! unknown fields ignored.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};

/// `ExportLogsServiceRequest`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportLogsServiceRequest {
    #[prost(message, repeated, tag = "1")]
    #[serde(default, alias = "resource_logs", deserialize_with = "nullable")]
    pub resource_logs: Vec<ResourceLogs>,
}

/// `ResourceLogs`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceLogs {
    #[prost(message, optional, tag = "1")]
    #[serde(default)]
    pub resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    #[serde(default, alias = "scope_logs", deserialize_with = "nullable")]
    pub scope_logs: Vec<ScopeLogs>,
}

/// `Resource`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct Resource {
    #[prost(message, repeated, tag = "1")]
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Vec<KeyValue>,
}

/// `ScopeLogs`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeLogs {
    #[prost(message, optional, tag = "1")]
    #[serde(default)]
    pub scope: Option<InstrumentationScope>,
    #[prost(message, repeated, tag = "2")]
    #[serde(default, alias = "log_records", deserialize_with = "nullable")]
    pub log_records: Vec<LogRecord>,
}

/// `InstrumentationScope`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct InstrumentationScope {
    #[prost(string, tag = "1")]
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[prost(string, tag = "2")]
    #[serde(default, deserialize_with = "nullable")]
    pub version: String,
    #[prost(message, repeated, tag = "3")]
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Vec<KeyValue>,
}

/// `LogRecord`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LogRecord {
    #[prost(fixed64, tag = "1")]
    #[serde(default, alias = "time_unix_nano", deserialize_with = "int64")]
    pub time_unix_nano: u64,
    #[prost(fixed64, tag = "11")]
    #[serde(default, alias = "observed_time_unix_nano", deserialize_with = "int64")]
    pub observed_time_unix_nano: u64,
    #[prost(int32, tag = "2")]
    #[serde(default, alias = "severity_number", deserialize_with = "severity")]
    pub severity_number: i32,
    #[prost(string, tag = "3")]
    #[serde(default, alias = "severity_text", deserialize_with = "nullable")]
    pub severity_text: String,
    #[prost(message, optional, tag = "5")]
    #[serde(default)]
    pub body: Option<AnyValue>,
    #[prost(message, repeated, tag = "6")]
    #[serde(default, deserialize_with = "nullable")]
    pub attributes: Vec<KeyValue>,
    #[prost(fixed32, tag = "8")]
    #[serde(default, deserialize_with = "int64")]
    pub flags: u32,
    #[prost(bytes = "vec", tag = "9")]
    #[serde(default, alias = "trace_id", deserialize_with = "hex")]
    pub trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "10")]
    #[serde(default, alias = "span_id", deserialize_with = "hex")]
    pub span_id: Vec<u8>,
    #[prost(string, tag = "12")]
    #[serde(default, alias = "event_name", deserialize_with = "nullable")]
    pub event_name: String,
}

/// `KeyValue`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct KeyValue {
    #[prost(string, tag = "1")]
    #[serde(default, deserialize_with = "nullable")]
    pub key: String,
    #[prost(message, optional, tag = "2")]
    #[serde(default)]
    pub value: Option<AnyValue>,
}

/// `AnyValue`: one of its kinds, or none.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AnyValue {
    #[prost(oneof = "Value", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub value: Option<Value>,
}

/// `AnyValue.value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Value {
    #[prost(string, tag = "1")]
    String(String),
    #[prost(bool, tag = "2")]
    Bool(bool),
    #[prost(int64, tag = "3")]
    Int(i64),
    #[prost(double, tag = "4")]
    Double(f64),
    #[prost(message, tag = "5")]
    Array(ArrayValue),
    #[prost(message, tag = "6")]
    Kvlist(KeyValueList),
    #[prost(bytes = "vec", tag = "7")]
    Bytes(Vec<u8>),
}

/// `ArrayValue`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct ArrayValue {
    #[prost(message, repeated, tag = "1")]
    #[serde(default, deserialize_with = "nullable")]
    pub values: Vec<AnyValue>,
}

/// `KeyValueList`.
#[derive(Clone, PartialEq, prost::Message, Deserialize)]
pub struct KeyValueList {
    #[prost(message, repeated, tag = "1")]
    #[serde(default, deserialize_with = "nullable")]
    pub values: Vec<KeyValue>,
}

/// `ExportLogsServiceResponse`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportLogsServiceResponse {
    #[prost(message, optional, tag = "1")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub partial_success: Option<ExportLogsPartialSuccess>,
}

/// `ExportLogsPartialSuccess`.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportLogsPartialSuccess {
    /// As OTLP/JSON writes an int64: a string.
    #[prost(int64, tag = "1")]
    #[serde(serialize_with = "int64_text")]
    pub rejected_log_records: i64,
    #[prost(string, tag = "2")]
    pub error_message: String,
}

/// `google.rpc.Status`: the body of an OTLP error answer.
#[derive(Clone, PartialEq, prost::Message, Serialize)]
pub struct Status {
    /// A `google.rpc.Code`.
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

impl<'de> Deserialize<'de> for AnyValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The JSON form: an object with (at most) one of these keys.
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Json {
            #[serde(default, alias = "string_value")]
            string_value: Option<String>,
            #[serde(default, alias = "bool_value")]
            bool_value: Option<bool>,
            #[serde(default, alias = "int_value", deserialize_with = "some_int64")]
            int_value: Option<i64>,
            #[serde(default, alias = "double_value", deserialize_with = "some_double")]
            double_value: Option<f64>,
            #[serde(default, alias = "array_value")]
            array_value: Option<ArrayValue>,
            #[serde(default, alias = "kvlist_value")]
            kvlist_value: Option<KeyValueList>,
            #[serde(default, alias = "bytes_value", deserialize_with = "some_base64")]
            bytes_value: Option<Vec<u8>>,
        }
        let j = Option::<Json>::deserialize(d)?;
        let value = j.and_then(|j| {
            j.string_value
                .map(Value::String)
                .or(j.bool_value.map(Value::Bool))
                .or(j.int_value.map(Value::Int))
                .or(j.double_value.map(Value::Double))
                .or(j.array_value.map(Value::Array))
                .or(j.kvlist_value.map(Value::Kvlist))
                .or(j.bytes_value.map(Value::Bytes))
        });
        Ok(AnyValue { value })
    }
}

/// `null` as the type's default, as proto3 JSON has it.
fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A JSON number or a decimal string (how OTLP/JSON writes 64-bit integers).
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(serde_json::Number),
    Text(String),
}

/// An integer field (`fixed64`, `fixed32`, `int64`) from a number or a string.
fn int64<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i128> + Default,
{
    let Some(n) = Option::<NumberOrText>::deserialize(d)? else {
        return Ok(T::default());
    };
    let (wide, shown): (Option<i128>, String) = match n {
        NumberOrText::Number(n) => (
            n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)),
            n.to_string(),
        ),
        NumberOrText::Text(t) => (t.trim().parse().ok(), t),
    };
    wide.and_then(|w| T::try_from(w).ok())
        .ok_or_else(|| de::Error::custom(format!("{shown:?} is not an integer in range")))
}

fn some_int64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    int64(d).map(Some)
}

/// A double from a number, or from the strings proto3 JSON allows.
fn some_double<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumberOrText::Number(n)) => Ok(n.as_f64()),
        Some(NumberOrText::Text(t)) => match t.as_ref() {
            "NaN" => Ok(Some(f64::NAN)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            other => other
                .parse()
                .map(Some)
                .map_err(|_| de::Error::custom(format!("{other:?} is not a number"))),
        },
    }
}

/// `severityNumber`: a number, or the enum value's name (`SEVERITY_NUMBER_WARN`).
fn severity<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    const NAMES: [&str; 6] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"];
    match Option::<NumberOrText>::deserialize(d)? {
        None => Ok(0),
        Some(NumberOrText::Number(n)) => n
            .as_i64()
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| de::Error::custom(format!("severityNumber {n} is out of range"))),
        Some(NumberOrText::Text(t)) => {
            let name = t.strip_prefix("SEVERITY_NUMBER_").unwrap_or(&t);
            if name == "UNSPECIFIED" {
                return Ok(0);
            }
            let (base, step) = name.split_at(
                name.find(|c: char| c.is_ascii_digit())
                    .unwrap_or(name.len()),
            );
            let step: i32 = if step.is_empty() {
                1
            } else {
                step.parse().unwrap_or(0)
            };
            match NAMES.iter().position(|n| *n == base) {
                Some(i) if (1..=4).contains(&step) => Ok(i as i32 * 4 + step),
                _ => Err(de::Error::custom(format!("{t:?} is not a SeverityNumber"))),
            }
        }
    }
}

/// `traceId` / `spanId`: hex in OTLP/JSON.
fn hex<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    let text = Option::<String>::deserialize(d)?.unwrap_or_default();
    let digits = text.as_bytes();
    if digits.len() % 2 != 0 {
        return Err(de::Error::custom(format!("{text:?} is not hex")));
    }
    digits
        .chunks(2)
        .map(|pair| {
            std::str::from_utf8(pair)
                .ok()
                .and_then(|p| u8::from_str_radix(p, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| de::Error::custom(format!("{text:?} is not hex")))
}

/// `bytesValue`: base64 in proto3 JSON.
fn some_base64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
    use base64::engine::{general_purpose::GeneralPurpose, DecodePaddingMode};
    use base64::Engine as _;
    let Some(text) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    let config = base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engines = [
        GeneralPurpose::new(&base64::alphabet::STANDARD, config),
        GeneralPurpose::new(&base64::alphabet::URL_SAFE, config),
    ];
    engines
        .iter()
        .find_map(|e| e.decode(text.as_bytes()).ok())
        .map(Some)
        .ok_or_else(|| de::Error::custom("bytesValue is not base64"))
}

fn int64_text<S: serde::Serializer>(n: &i64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(n)
}
