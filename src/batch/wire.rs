//! The wire form of forwarded batches: what a peer link sends to
//! `POST /internal/v1/batches` and what the receiver decodes, with the headers that
//! say who sent it and under which cluster layout.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::EncodedRows;

/// Header naming the sending node.
pub const NODE_HEADER: &str = "x-chute-node";
/// Header carrying the sender's layout fingerprint (`Config::layout_fingerprint`).
pub const LAYOUT_HEADER: &str = "x-chute-layout";
/// Content type of a batches request.
pub const CONTENT_TYPE: &str = "application/vnd.chute.batches";

/// Largest `[cluster] batch_bytes`: the most record bytes a peer link puts in one
/// request, and in one entry of its queue.
pub const MAX_BATCH_BYTES: usize = 64 << 20;

/// Largest batches request a node takes, decompressed. A sender's request holds at
/// most `batch_bytes` of entries (or one entry queued before entries were bounded)
/// plus a few bytes of framing each, so twice the largest `batch_bytes` takes
/// whatever any node of the cluster sends, whichever limits each is configured with.
pub const MAX_REQUEST_BYTES: usize = 2 * MAX_BATCH_BYTES;

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

    /// The body, zstd-compressed; `Ok(None)` when it holds no batch.
    ///
    /// # Errors
    /// zstd failed to compress (it could not allocate its context): the batches are
    /// still to be sent, so the caller retries rather than moving past them.
    pub fn finish(mut self) -> std::io::Result<Option<Bytes>> {
        if self.count == 0 {
            return Ok(None);
        }
        self.buf[MAGIC.len()..MAGIC.len() + 4].copy_from_slice(&self.count.to_be_bytes());
        // Level 1: most of zstd's gain on log text at a fraction of its CPU.
        zstd::bulk::compress(&self.buf, 1).map(|b| Some(Bytes::from(b)))
    }
}

/// Who this node is, as it presents itself to its peers: on forwarded batches and
/// on the queries it asks them.
#[derive(Clone)]
pub struct Credentials {
    pub node: String,
    /// `Bearer <token>` for each peer token, the first sent first; never logged.
    authorizations: std::sync::Arc<Vec<String>>,
    /// Per peer, the token it last accepted (an index into `authorizations`):
    /// during a rotation, a peer that does not know this node's first token yet
    /// gets the next one after refusing it.
    chosen: std::sync::Arc<dashmap::DashMap<String, usize>>,
    pub fingerprint: String,
    /// For `https://` peers: the CAs to trust and this node's client certificate.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Credentials {
    pub fn new(
        node: String,
        tokens: &[&str],
        fingerprint: String,
        tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    ) -> Credentials {
        let mut authorizations: Vec<String> =
            tokens.iter().map(|t| format!("Bearer {t}")).collect();
        if authorizations.is_empty() {
            authorizations.push("Bearer ".to_owned());
        }
        Credentials {
            node,
            authorizations: std::sync::Arc::new(authorizations),
            chosen: Default::default(),
            fingerprint,
            tls,
        }
    }

    /// `request` to node `peer` with the headers a peer admits it by: the peer
    /// token it accepts, this node's id and its layout fingerprint.
    pub fn sign(&self, request: awc::ClientRequest, peer: &str) -> awc::ClientRequest {
        let i = self.chosen.get(peer).map_or(0, |i| *i);
        request
            .insert_header(("authorization", self.authorizations[i].as_str()))
            .insert_header((NODE_HEADER, self.node.as_str()))
            .insert_header((LAYOUT_HEADER, self.fingerprint.as_str()))
    }

    /// `peer` refused the token it was sent (401): it gets the next from now on.
    pub fn refused_by(&self, peer: &str) {
        if self.authorizations.len() > 1 {
            let mut i = self.chosen.entry(peer.to_owned()).or_insert(0);
            *i = (*i + 1) % self.authorizations.len();
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Record;

    fn body(frames: &[(u32, &str, &EncodedRows)]) -> Bytes {
        let mut b = BatchesBody::with_capacity(0);
        for (shard, id, rows) in frames {
            b.push(*shard, id, &rows.to_payload(&[], None));
        }
        let compressed = b.finish().unwrap().unwrap();
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
