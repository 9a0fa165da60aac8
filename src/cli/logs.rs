//! `chute query` and `chute tail`: the Loki API of a node, printed for people
//! (coloured by level on a terminal, like `journalctl`) or for programs (JSON
//! lines, or the raw lines). Warnings and dropped lines go to stderr.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use futures_util::StreamExt;
use serde_json::Value;

use super::ClientTls;

/// How lines are printed.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Text,
    Json,
    Raw,
}

/// `chute query`: asks `query_range` and prints the answer; the exit code says
/// whether the node answered (0), refused the query (2) or could not answer (1).
pub async fn search(
    url: &str,
    params: &[(&str, String)],
    tenant: &str,
    output: Output,
    tls: Option<ClientTls>,
) -> anyhow::Result<ExitCode> {
    let endpoint = format!(
        "{}/loki/api/v1/query_range?{}",
        url.trim_end_matches('/'),
        encode(params)
    );
    let client = chute::tls::http_client(std::time::Duration::from_secs(120), tls);
    let mut response = super::authorized(client.get(&endpoint))
        .insert_header(("x-scope-orgid", tenant))
        .insert_header(("x-loki-response-encoding-flags", "categorize-labels"))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
    let body = response.body().limit(256 << 20).await?;
    let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
    if !response.status().is_success() {
        return Ok(refused("query", response.status().as_u16(), &answer, &body));
    }
    warn("query", &answer);
    let mut out = std::io::stdout().lock();
    let data = &answer["data"];
    if data["resultType"] != "streams" {
        // A metric query: one line per series and point.
        for series in data["result"].as_array().into_iter().flatten() {
            let labels = series["metric"].to_string();
            for point in series["values"].as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{} {labels} {}",
                    point[0],
                    point[1].as_str().unwrap_or_default()
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let forward = params
        .iter()
        .any(|(k, v)| *k == "direction" && v == "forward");
    print_streams(&mut out, data["result"].as_array(), forward, output)?;
    Ok(ExitCode::SUCCESS)
}

/// `chute tail`: follows `/loki/api/v1/tail` and prints lines as they come, until
/// the node closes the tail (exit 1) or the command is interrupted.
pub async fn tail(
    url: &str,
    params: &[(&str, String)],
    tenant: &str,
    output: Output,
    tls: Option<ClientTls>,
) -> anyhow::Result<ExitCode> {
    let endpoint = format!(
        "{}/loki/api/v1/tail?{}",
        url.trim_end_matches('/'),
        encode(params)
    );
    let client = chute::tls::http_client(std::time::Duration::from_secs(30), tls);
    let mut ws = client.ws(&endpoint).header("x-scope-orgid", tenant);
    if let Some(value) = super::bearer() {
        ws = ws.header("authorization", value);
    }
    let (response, mut frames) = match ws.max_frame_size(64 << 20).connect().await {
        Ok(connected) => connected,
        Err(awc::error::WsClientError::InvalidResponseStatus(status)) => {
            // The refusal's reason is in its body: asked again as a plain GET,
            // which the node checks the same way before any upgrade.
            let mut again = super::authorized(client.get(&endpoint))
                .insert_header(("x-scope-orgid", tenant))
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("cannot reach {url}: {e}"))?;
            let body = again.body().limit(1 << 20).await.unwrap_or_default();
            let answer: Value = serde_json::from_slice(&body).unwrap_or_default();
            return Ok(refused("tail", status.as_u16(), &answer, &body));
        }
        Err(e) => anyhow::bail!("cannot reach {url}: {e}"),
    };
    drop(response);
    while let Some(frame) = frames.next().await {
        let text = match frame? {
            awc::ws::Frame::Text(text) => text,
            awc::ws::Frame::Close(reason) => {
                eprintln!("chute tail: the node closed the tail: {reason:?}");
                return Ok(ExitCode::FAILURE);
            }
            _ => continue,
        };
        let frame: Value = serde_json::from_slice(&text).unwrap_or_default();
        warn("tail", &frame);
        if let Some(dropped) = frame["dropped_entries"].as_array() {
            eprintln!(
                "chute tail: {} line(s) dropped: the tail could not keep up",
                dropped.len()
            );
        }
        let mut out = std::io::stdout().lock();
        print_streams(&mut out, frame["streams"].as_array(), true, output)?;
        out.flush()?;
    }
    eprintln!("chute tail: the node ended the tail");
    Ok(ExitCode::FAILURE)
}

fn encode(params: &[(&str, String)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())))
        .finish()
}

/// States a refusal on stderr; exit 2 for a bad query (400), else 1.
fn refused(command: &str, status: u16, answer: &Value, body: &[u8]) -> ExitCode {
    let message = answer["message"]
        .as_str()
        .map_or_else(|| String::from_utf8_lossy(body).into_owned(), str::to_owned);
    eprintln!("chute {command}: {message}");
    if status == 400 {
        ExitCode::from(2)
    } else {
        ExitCode::FAILURE
    }
}

fn warn(command: &str, answer: &Value) {
    for warning in answer["warnings"].as_array().into_iter().flatten() {
        eprintln!(
            "chute {command}: warning: {}",
            warning.as_str().unwrap_or_default()
        );
    }
}

/// The lines of Loki streams, in time order (newest first unless `forward`).
fn print_streams(
    out: &mut impl Write,
    streams: Option<&Vec<Value>>,
    forward: bool,
    output: Output,
) -> std::io::Result<()> {
    let colour = output == Output::Text && std::io::stdout().is_terminal();
    let mut lines: Vec<(i64, &Value, &Value)> = Vec::new();
    for stream in streams.into_iter().flatten() {
        for value in stream["values"].as_array().into_iter().flatten() {
            let ts = value[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
            lines.push((ts, &stream["stream"], value));
        }
    }
    lines.sort_by_key(|(ts, _, _)| if forward { *ts } else { -*ts });
    for (ts, labels, value) in lines {
        let line = value[1].as_str().unwrap_or_default();
        match output {
            Output::Raw => writeln!(out, "{line}")?,
            Output::Json => {
                let mut record = serde_json::json!({
                    "ts": chrono::DateTime::from_timestamp_nanos(ts).to_rfc3339(),
                    "labels": labels,
                    "line": line,
                });
                if let Some(meta) = value.get(2) {
                    record["metadata"] = meta["structuredMetadata"].clone();
                }
                writeln!(out, "{record}")?;
            }
            Output::Text => {
                let time = chrono::DateTime::from_timestamp_nanos(ts)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let stream: Vec<String> = labels
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter(|(k, _)| *k != "tenant")
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect();
                let (on, off) = match (colour, labels["level"].as_str()) {
                    (true, Some("critical" | "error")) => ("\x1b[31m", "\x1b[0m"),
                    (true, Some("warning")) => ("\x1b[33m", "\x1b[0m"),
                    (true, Some("debug")) => ("\x1b[2m", "\x1b[0m"),
                    _ => ("", ""),
                };
                writeln!(out, "{time} {{{}}} {on}{line}{off}", stream.join(","))?;
            }
        }
    }
    Ok(())
}
