//! Node-to-node routes: `POST /internal/v1/batches` takes the batches a peer link
//! forwards, and answers once they are durable in this node's shard queues.
//!
//! Every request must carry the cluster's peer token (compared in constant time), a
//! known sender, and the same layout fingerprint as this node; anything else is
//! refused (401/409) and counted before the body is read. Batches from a peer go
//! straight to the spools of this node's own shards: a node never forwards a record
//! it received from a peer, and a batch for a shard it does not own is refused.

use std::collections::HashMap;

use actix::Recipient;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures_util::future::join_all;
use serde::Serialize;
use subtle::ConstantTimeEq;

use super::error::ApiError;
use super::logs::{header_text, read_body};
use super::AppState;
use crate::actors::peer::{LAYOUT_HEADER, NODE_HEADER};
use crate::actors::{deliver, Deliver, Rows};
use crate::config::{Config, Secret, ShardKey};
use crate::ingest::body::ContentEncoding;
use crate::pg::copy::EncodedRows;

/// The cluster as this node knows it: who may talk to it, and where each shard is.
pub struct ClusterView {
    pub node: String,
    pub token: Option<Secret>,
    pub fingerprint: String,
    pub shard_key: ShardKey,
    /// Every member (id, URL); empty for a single node.
    pub nodes: Vec<(String, String)>,
    /// Every shard (id, owner), in id order.
    pub shards: Vec<(u32, String)>,
    /// Spools of the shards this node writes.
    pub local: HashMap<u32, Recipient<Deliver>>,
    /// Largest batches request, received and decoded.
    pub max_request_bytes: usize,
}

impl ClusterView {
    /// The view of `config`, with the spools of the local shards.
    pub fn new(config: &Config, local: HashMap<u32, Recipient<Deliver>>) -> ClusterView {
        let mut shards: Vec<(u32, String)> = config
            .shards
            .iter()
            .map(|s| (s.id, config.owner_of(s).to_owned()))
            .collect();
        if shards.is_empty() {
            shards.push((0, config.node.id.clone()));
        }
        shards.sort();
        ClusterView {
            node: config.node.id.clone(),
            token: config.cluster.peer_token.clone(),
            fingerprint: config.layout_fingerprint(),
            shard_key: config.cluster.shard_key,
            nodes: config
                .nodes
                .iter()
                .map(|n| (n.id.clone(), n.url.clone()))
                .collect(),
            shards,
            local,
            // Room for one big batch (a whole HTTP request bound for one shard) beyond
            // the usual request size.
            max_request_bytes: config
                .http
                .max_body_bytes
                .max(config.cluster.batch_bytes)
                .saturating_mul(4),
        }
    }

    /// The sending node, once the request proves it belongs to the cluster.
    fn admit(&self, headers: &HeaderMap) -> Result<String, ApiError> {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        let valid = self
            .token
            .as_ref()
            .is_some_and(|t| bool::from(t.expose().as_bytes().ct_eq(presented.as_bytes())));
        if !valid {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong peer token",
            ));
        }
        let sender =
            header_text(headers, header::HeaderName::from_static(NODE_HEADER))?.unwrap_or("");
        if sender == self.node || !self.nodes.iter().any(|(id, _)| id == sender) {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unknown_node",
                format!("{NODE_HEADER} must name another member of the cluster"),
            ));
        }
        let layout =
            header_text(headers, header::HeaderName::from_static(LAYOUT_HEADER))?.unwrap_or("");
        if layout != self.fingerprint {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "layout_mismatch",
                format!(
                    "cluster layout {layout:?} differs from this node's {}; give every node the same [[nodes]], [[shards]] and shard_key",
                    self.fingerprint
                ),
            ));
        }
        Ok(sender.to_owned())
    }
}

/// First bytes of an (uncompressed) batches request.
pub const MAGIC: &[u8; 4] = b"CHB1";

/// The body of a batches request, before zstd compression:
///
/// ```text
/// "CHB1", u32 batch count, then per batch:
///   u32 shard, u16 id length, id (UTF-8), u32 payload length, payload
/// ```
/// All integers big-endian; the payload is a queue batch payload (binary COPY rows
/// with their offsets, see [`EncodedRows::to_payload`]).
pub struct BatchesBody {
    buf: BytesMut,
    count: u32,
}

impl BatchesBody {
    pub fn with_capacity(bytes: usize) -> BatchesBody {
        let mut buf = BytesMut::with_capacity(bytes + MAGIC.len() + 4);
        buf.put_slice(MAGIC);
        buf.put_u32(0); // the count, filled in by `finish`
        BatchesBody { buf, count: 0 }
    }

    /// Adds one batch. An id longer than 65535 bytes is cut (ids are short).
    pub fn push(&mut self, shard: u32, id: &str, payload: &[u8]) {
        let id = &id.as_bytes()[..id.len().min(u16::MAX as usize)];
        self.buf.put_u32(shard);
        self.buf.put_u16(id.len() as u16);
        self.buf.put_slice(id);
        self.buf.put_u32(payload.len() as u32);
        self.buf.put_slice(payload);
        self.count += 1;
    }

    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The body, zstd-compressed; `None` when it holds no batch.
    pub fn finish(mut self) -> Option<Bytes> {
        if self.count == 0 {
            return None;
        }
        self.buf[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&self.count.to_be_bytes());
        // Level 1: most of zstd's gain on log text at a fraction of its CPU.
        zstd::bulk::compress(&self.buf, 1).ok().map(Bytes::from)
    }
}

/// One batch of a request.
pub struct Framed {
    pub shard: u32,
    pub id: String,
    pub rows: EncodedRows,
}

/// Reads the batches of a (decompressed) request body; see
/// [`crate::actors::peer::PeerLink`] for the layout.
///
/// # Errors
/// A body that is truncated, lacks the magic, or holds a malformed batch.
pub fn parse_batches(body: Bytes) -> Result<Vec<Framed>, &'static str> {
    let mut buf = body;
    if buf.len() < MAGIC.len() || &buf[..MAGIC.len()] != MAGIC {
        return Err("not a chute batches body");
    }
    buf.advance(MAGIC.len());
    if buf.remaining() < 4 {
        return Err("truncated batch count");
    }
    let count = buf.get_u32() as usize;
    if count == 0 {
        return Err("no batches");
    }
    let mut out = Vec::with_capacity(count.min(4096));
    while buf.has_remaining() {
        if buf.remaining() < 6 {
            return Err("truncated batch header");
        }
        let shard = buf.get_u32();
        let id_len = buf.get_u16() as usize;
        if buf.remaining() < id_len + 4 {
            return Err("truncated batch id");
        }
        let id = String::from_utf8(buf.split_to(id_len).to_vec())
            .map_err(|_| "batch id is not UTF-8")?;
        if id.is_empty() {
            return Err("empty batch id");
        }
        let len = buf.get_u32() as usize;
        if buf.remaining() < len {
            return Err("truncated batch");
        }
        let (_, rows) = EncodedRows::from_payload(buf.split_to(len)).map_err(|e| e.0)?;
        rows.validate().map_err(|e| e.0)?;
        out.push(Framed { shard, id, rows });
    }
    if out.len() != count {
        return Err("batch count does not match the batches");
    }
    Ok(out)
}

/// Any other `/internal/` request: 401 without the right token (counted), else 404.
pub async fn unknown(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Err(e) = state.cluster.admit(req.headers()) {
        state
            .metrics
            .internal_refused
            .with_label_values(&[e.reason])
            .inc();
        return Err(e);
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such internal route",
    ))
}

#[derive(Serialize)]
struct Stored {
    batches: usize,
    records: usize,
}

/// `POST /internal/v1/batches`.
pub async fn post_batches(
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let result = receive(&req, &mut payload, &state).await;
    if let Err(e) = &result {
        if e.status != StatusCode::SERVICE_UNAVAILABLE {
            state
                .metrics
                .internal_refused
                .with_label_values(&[e.reason])
                .inc();
            tracing::warn!(status = e.status.as_u16(), reason = e.reason, error = %e.message, "refused a peer request");
        }
    }
    result
}

async fn receive(
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
) -> Result<HttpResponse, ApiError> {
    let cluster = &state.cluster;
    let sender = cluster.admit(req.headers())?;
    let encoding =
        ContentEncoding::from_header(header_text(req.headers(), header::CONTENT_ENCODING)?)
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed", e.to_string()))?;
    let body = read_body(payload, encoding, cluster.max_request_bytes)
        .await
        .map_err(|e| {
            let reason = if e.status == StatusCode::PAYLOAD_TOO_LARGE {
                "too_large"
            } else {
                "malformed"
            };
            ApiError::new(e.status, reason, e.message)
        })?;
    let batches = parse_batches(Bytes::from(body)).map_err(|why| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed",
            format!("malformed batches: {why}"),
        )
    })?;
    // Check every shard before storing anything, so a misdirected request stores nothing.
    let spools = batches
        .iter()
        .map(|b| {
            cluster.local.get(&b.shard).ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    "shard_not_owned",
                    format!("shard {} is not written by node {}", b.shard, cluster.node),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let records: usize = batches.iter().map(|b| b.rows.len()).sum();
    let count = batches.len();
    let sends: Vec<_> = batches
        .into_iter()
        .zip(spools)
        .map(|(b, spool)| deliver(spool, b.shard, Rows::Encoded(b.rows), Some(b.id)))
        .collect();
    if let Some(Err(e)) = join_all(sends).await.into_iter().find(Result::is_err) {
        // Some batches may be durable already; the sender's retry is recognised by id.
        return Err(ApiError::from(e));
    }
    let m = &state.metrics;
    m.peer_batches_received
        .with_label_values(&[&sender])
        .inc_by(count as u64);
    m.peer_records_received
        .with_label_values(&[&sender])
        .inc_by(records as u64);
    Ok(HttpResponse::Ok().json(Stored {
        batches: count,
        records,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn body(frames: &[(u32, &str, &EncodedRows)]) -> Bytes {
        let mut b = BatchesBody::with_capacity(0);
        for (shard, id, rows) in frames {
            b.push(*shard, id, &rows.to_payload(&[], None));
        }
        let compressed = b.finish().unwrap();
        Bytes::from(zstd::bulk::decompress(&compressed, 1 << 20).unwrap())
    }

    #[test]
    fn batches_round_trip_and_every_truncation_is_refused() {
        let now = chrono::Utc::now();
        let r = Record {
            ts: now,
            received_at: now,
            tenant: "t".into(),
            host: Some("h".into()),
            app: None,
            procid: None,
            msgid: None,
            severity: None,
            facility: None,
            message: "hello".into(),
            fields: Default::default(),
            sd: None,
        };
        let rows = EncodedRows::encode(&[r.clone(), r]).unwrap();
        let whole = body(&[(3, "q:1", &rows), (5, "q:2", &rows)]);
        let parsed = parse_batches(whole.clone()).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!((parsed[1].shard, parsed[1].id.as_str()), (5, "q:2"));
        assert_eq!(parsed[0].rows.len(), 2);
        for cut in 0..whole.len() {
            assert!(parse_batches(whole.slice(..cut)).is_err(), "cut at {cut}");
        }
    }
}
