//! Live tail: `GET /loki/api/v1/tail` (a websocket, as Loki's) and
//! `POST /internal/v1/tail` (a peer following this node's shards).
//!
//! With tokens, a browser's tail presents its token in a subprotocol (see
//! [`WEBSOCKET_TOKEN_PREFIX`](super::auth::WEBSOCKET_TOKEN_PREFIX)) and is
//! answered with [`WEBSOCKET_PROTOCOL`].
//!
//! A tail first sends the newest `limit` lines since `start` (oldest first), then
//! every line committed after, from every shard of the cluster: this node's shards
//! through its [`Hub`](crate::query::tail::Hub), every other owner's through a
//! stream of JSON lines from that node ([`follow_peer`]). Frames go out at most
//! every [`FLUSH`] (a line reaches the client well within a second of its
//! commit), as `{"streams": [...], "dropped_entries": [...]}`. A client that
//! cannot keep up loses lines, and is told which in `dropped_entries`; nothing
//! waits for it in memory beyond each subscription's bounded buffer. A node that
//! cannot be followed is named in a frame's `warnings` until it is back.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::auth::{websocket_protocols, WEBSOCKET_PROTOCOL};
use super::internal::admitted;
use super::loki::{streams, tenant, LokiError, Params};
use super::AppState;
use crate::query::exec::{Direction, QueryState};
use crate::query::fanout::{follow_peer, Fanout, Follow};
use crate::query::pipeline::Entry;
use crate::query::shard::{Part, Work};
use crate::query::tail::{size_of, Chunk, Dropped, Event, Filter, BUFFER_BYTES, BUFFER_ENTRIES};
use crate::query::time::nanos;
use crate::query::QueryError;

/// Longest a committed line waits before it is sent.
const FLUSH: Duration = Duration::from_millis(100);

/// Most lines in one frame.
const MAX_FRAME_LINES: usize = 1000;

/// Most bytes (about) in one frame: with the 32 frames a websocket session
/// queues, what one slow client holds stays a few MiB.
const MAX_FRAME_BYTES: usize = 256 << 10;

/// Longest a new tail waits for its peers to follow their writes before it
/// reads its first lines (so no line committed meanwhile falls in between).
const PEER_FOLLOW_WAIT: Duration = Duration::from_secs(2);
/// How far back a tail's first lines reach without `start` (Loki's default).
const DEFAULT_SINCE_NS: i64 = 3_600 * 1_000_000_000;

/// Lines a tail starts with when `limit` is not given (Loki's default).
const DEFAULT_LIMIT: usize = 100;

/// Counts one open tail in `chute_tail_clients` for as long as it lives.
struct Open(prometheus::IntGauge);

impl Open {
    fn new(state: &AppState, kind: &str) -> Open {
        let gauge = state.metrics.tail_clients.with_label_values(&[kind]);
        gauge.inc();
        Open(gauge)
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Without tokens, a tail may not be opened by a page of another site: websockets
/// are outside the browser's same-origin rules, so any page a user visits could
/// otherwise read chute's logs through the user's browser, from a listener only
/// that browser reaches (127.0.0.1). Refused when the request's `Origin` names
/// another host than its `Host`; clients that are not browsers send no `Origin`.
/// With tokens, the token is the guard: another site's page cannot read it.
fn same_origin(req: &HttpRequest, state: &AppState) -> Result<(), QueryError> {
    let headers = req.headers();
    let Some(origin) = headers.get(actix_web::http::header::ORIGIN) else {
        return Ok(());
    };
    if state.auth.required() {
        return Ok(());
    }
    let host = headers
        .get(actix_web::http::header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    if host.is_some() && origin_host == host {
        return Ok(());
    }
    state
        .metrics
        .auth_refused
        .with_label_values(&["cross_origin"])
        .inc();
    Err(QueryError::Forbidden(
        "a page of another site may not open a tail: its Origin is not this host".into(),
    ))
}

/// `GET /loki/api/v1/tail?query=...&start=...&limit=...`: checked before the
/// upgrade, so a bad query is a 400 with a position, as for `query_range`.
pub async fn tail(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let p = Params::of(&req, &[]);
    let checked = (|| {
        same_origin(&req, &state)?;
        let query = p.query()?.to_owned();
        let tenant = tenant(&req, &state)?;
        let filter = Filter::new(&query, &tenant)?;
        let now = nanos(chrono::Utc::now());
        let start = p.time("start")?.unwrap_or(now - DEFAULT_SINCE_NS);
        let limit = match p.get("limit") {
            None => DEFAULT_LIMIT.min(state.query.max_limit),
            Some(_) => p.limit(state.query.max_limit)?,
        };
        Ok::<_, QueryError>((query, tenant, filter, start, limit))
    })();
    let (query, tenant, filter, start, limit) = checked.map_err(LokiError)?;
    let (mut response, session, messages) = actix_ws::handle(&req, body)?;
    // A browser that offered subprotocols (its token among them) needs one named
    // in the answer, or it drops the connection; never the token's.
    let offered = websocket_protocols(req.headers()).any(|p| p == WEBSOCKET_PROTOCOL);
    if offered {
        response.headers_mut().insert(
            actix_web::http::header::SEC_WEBSOCKET_PROTOCOL,
            actix_web::http::header::HeaderValue::from_static(WEBSOCKET_PROTOCOL),
        );
    }
    let state = state.into_inner();
    actix_web::rt::spawn(async move {
        let open = Open::new(&state, "client");
        let tail = Tail {
            query,
            tenant,
            start,
            limit,
        };
        if let Err(e) = tail.run(&state, filter, session, messages).await {
            tracing::debug!(error = %e, "a tail ended");
        }
        drop(open);
    });
    Ok(response)
}

struct Tail {
    query: String,
    tenant: String,
    start: i64,
    limit: usize,
}

impl Tail {
    async fn run(
        self,
        state: &Arc<AppState>,
        filter: Filter,
        mut session: actix_ws::Session,
        mut messages: actix_ws::MessageStream,
    ) -> Result<(), String> {
        let q = &state.query;
        // Subscribed before the first lines are read, so none falls in between;
        // lines both read and published are sent once.
        let mut local = q.tail.subscribe(filter);
        let (tx, mut remote) = mpsc::channel::<Event>(64);
        let mut owners: BTreeMap<String, Vec<u32>> = BTreeMap::new();
        for (id, owner) in &q.shards.remote {
            owners.entry(owner.clone()).or_default().push(*id);
        }
        let mut following = Vec::new();
        for (owner, shards) in owners {
            let follow = Follow {
                tenant: self.tenant.clone(),
                shards,
                query: self.query.clone(),
            };
            let (ready, followed) = tokio::sync::oneshot::channel();
            following.push(followed);
            actix_web::rt::spawn(follow_peer(q.clone(), owner, follow, tx.clone(), ready));
        }
        drop(tx);
        // Likewise each peer: it answers once it follows its writes. One that is
        // slow to answer holds the first lines back at most PEER_FOLLOW_WAIT;
        // one that is down, not at all (its attempt fails at once).
        let _ =
            tokio::time::timeout(PEER_FOLLOW_WAIT, futures_util::future::join_all(following)).await;

        let (first, mut warnings) = self.first_lines(q).await;
        let seen: HashSet<(i64, String)> = first.iter().map(|e| (e.ts, e.line.clone())).collect();
        let newest = first.last().map_or(i64::MIN, |e| e.ts);
        send(&mut session, first, Dropped::default(), &warnings).await?;

        let mut lost: BTreeMap<String, String> = BTreeMap::new();
        // Whether the client knows which nodes are not followed.
        let mut told = true;
        let mut pending: Vec<Entry> = Vec::new();
        // Bytes of `pending`.
        let mut pending_bytes = 0usize;
        let mut dropped = Dropped::default();
        let mut tick = tokio::time::interval(FLUSH);
        let closing = q.tail.closing();
        tokio::pin!(closing);
        loop {
            let before = pending.len();
            tokio::select! {
                () = &mut closing => {
                    let _ = session.close(Some(actix_ws::CloseCode::Away.into())).await;
                    return Ok(());
                }
                got = local.recv_many(&mut pending, MAX_FRAME_LINES) => {
                    if got == 0 {
                        return Err("the tail hub closed".into());
                    }
                }
                event = remote.recv(), if !remote.is_closed() => match event {
                    Some(Event::Chunk(chunk)) => take_chunk(chunk, &mut pending, &mut dropped),
                    Some(Event::Lost { node, why }) => {
                        lost.insert(node, why);
                        told = false;
                    }
                    Some(Event::Back { node }) => {
                        lost.remove(&node);
                        told = false;
                    }
                    None => {}
                },
                message = messages.next() => match message {
                    Some(Ok(actix_ws::Message::Ping(bytes))) => {
                        session.pong(&bytes).await.map_err(|e| e.to_string())?;
                    }
                    Some(Ok(actix_ws::Message::Close(_))) | None | Some(Err(_)) => {
                        let _ = session.close(None).await;
                        return Ok(());
                    }
                    Some(Ok(_)) => {}
                },
                _ = tick.tick() => {
                    dropped.add(local.take_dropped());
                    warnings = lost
                        .iter()
                        .map(|(node, why)| format!("lines of node {node}'s shards are not followed: {why}"))
                        .collect();
                    if pending.is_empty() && dropped.count == 0 && told {
                        continue;
                    }
                    told = true;
                    let frame = next_frame(&mut pending, newest, &seen);
                    pending_bytes = 0;
                    send(&mut session, frame, std::mem::take(&mut dropped), &warnings).await?;
                }
            }
            // What this turn added (nothing, if the tick just sent everything).
            pending_bytes += pending
                .get(before..)
                .map_or(0, |new| new.iter().map(size_of).sum());
            if pending.len() > BUFFER_ENTRIES || pending_bytes > BUFFER_BYTES {
                // More than a client can be sent in one tick: sent now.
                let frame = next_frame(&mut pending, newest, &seen);
                pending_bytes = 0;
                send(&mut session, frame, std::mem::take(&mut dropped), &warnings).await?;
            }
        }
    }

    /// The newest `limit` lines since `start`, oldest first, and warnings naming
    /// the shards they could not come from.
    async fn first_lines(&self, q: &Arc<QueryState>) -> (Vec<Entry>, Vec<String>) {
        let fanout = Fanout::new(q, &self.tenant);
        let work = Work::Lines {
            log: self.query.clone(),
            start: self.start,
            end: nanos(chrono::Utc::now()) + 1,
            direction: Direction::Backward,
            limit: self.limit,
        };
        match fanout.ask(work).await {
            Ok(Part::Lines(mut lines)) => {
                lines.reverse();
                (lines, fanout.warnings())
            }
            Ok(_) => (Vec::new(), Vec::new()),
            Err(e) => (
                Vec::new(),
                vec![format!("the first lines could not be read: {e}")],
            ),
        }
    }
}

/// The pending lines as the next frame, in time order; lines committed while the
/// first ones were read (and so in them) come once.
fn next_frame(pending: &mut Vec<Entry>, newest: i64, seen: &HashSet<(i64, String)>) -> Vec<Entry> {
    pending.retain(|e| e.ts > newest || !seen.contains(&(e.ts, e.line.clone())));
    pending.sort_by_key(|e| e.ts);
    std::mem::take(pending)
}

fn take_chunk(chunk: Chunk, pending: &mut Vec<Entry>, dropped: &mut Dropped) {
    pending.extend(chunk.entries);
    dropped.add(Dropped {
        count: chunk.dropped,
        samples: chunk.samples,
    });
}

/// One frame, in Loki's shape; `warnings` only when there are some.
async fn send(
    session: &mut actix_ws::Session,
    lines: Vec<Entry>,
    dropped: Dropped,
    warnings: &[String],
) -> Result<(), String> {
    let mut parts: Vec<Vec<Entry>> = vec![Vec::new()];
    let mut bytes = 0;
    for e in lines {
        let size = size_of(&e);
        let last = parts.last().map_or(0, Vec::len);
        if last > 0 && (last >= MAX_FRAME_LINES || bytes + size > MAX_FRAME_BYTES) {
            parts.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        parts.last_mut().expect("a part").push(e);
    }
    // A frame even without lines, for the drops and warnings; drops told once.
    let mut dropped = Some(dropped);
    for part in parts {
        let dropped = dropped.take().unwrap_or_default();
        let mut frame = json!({"streams": streams(part, false)});
        frame["dropped_entries"] = if dropped.count == 0 {
            Value::Null
        } else {
            json!(dropped
                .samples
                .iter()
                .map(|(labels, ts)| json!({"labels": labels, "timestamp": ts.to_string()}))
                .collect::<Vec<_>>())
        };
        if !warnings.is_empty() {
            frame["warnings"] = json!(warnings);
        }
        session
            .text(frame.to_string())
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// `POST /internal/v1/tail`: a peer follows this node's shards; the answer is a
/// stream of JSON lines ([`Chunk`]), a line at most every [`FLUSH`] and an empty
/// one every few seconds, so either side notices the other is gone.
pub async fn internal_tail(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, actix_web::Error> {
    let follow: Follow = admitted(&req, &body, &state)?;
    let filter = Filter::new(&follow.query, &follow.tenant).map_err(LokiError)?;
    let subscription = state.query.tail.subscribe(filter);
    let open = Open::new(&state, "peer");
    let closing = Box::pin(state.query.tail.closing());
    let stream = futures_util::stream::unfold(
        (subscription, open, 0u32, closing),
        |(mut sub, open, mut idle, mut closing)| async move {
            let mut entries = Vec::new();
            tokio::select! {
                () = &mut closing => return None,
                got = sub.recv_many(&mut entries, MAX_FRAME_LINES) => {
                    if got == 0 {
                        return None;
                    }
                }
                () = tokio::time::sleep(FLUSH) => {}
            }
            let dropped = sub.take_dropped();
            idle = if entries.is_empty() && dropped.count == 0 {
                idle + 1
            } else {
                0
            };
            let chunk = Chunk {
                entries,
                dropped: dropped.count,
                samples: dropped.samples,
            };
            // A line with news, or a keep-alive every 30 idle ticks.
            let line = if chunk != Chunk::default() || idle % 30 == 0 {
                let mut text = serde_json::to_vec(&chunk).unwrap_or_default();
                text.push(b'\n');
                Bytes::from(text)
            } else {
                Bytes::new()
            };
            Some((Ok::<_, actix_web::Error>(line), (sub, open, idle, closing)))
        },
    )
    .filter(|line| std::future::ready(line.as_ref().map_or(true, |b| !b.is_empty())));
    Ok(HttpResponse::Ok()
        .content_type("application/x-ndjson")
        .streaming(stream))
}
