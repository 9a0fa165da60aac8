//! Asking every shard of the cluster: this node's shards directly, every other
//! owner over `POST /internal/v1/query` (with the peer token and, for `https://`
//! peers, the cluster's client certificate), all at once; their parts are merged
//! into one ([`Work::merge`]).
//!
//! A node that cannot be reached, or does not answer within the query's time
//! limit, leaves its shards out of the answer, and the answer says which
//! ([`Fanout::warnings`], [`Fanout::missing`]): never a silent partial result. A
//! node that answers with an error (its PostgreSQL failed, the query ran past its
//! time limit) fails the query as a local shard would.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;

use super::exec::{QueryState, Shard};
use super::shard::{Ask, Part, Read, Work};
use super::tail::{Chunk, Event};
use super::QueryError;

/// Path of the route owners answer on.
pub const QUERY_PATH: &str = "/internal/v1/query";

/// Largest answer taken from a peer.
const MAX_PART_BYTES: usize = 256 << 20;

/// Extra time a peer gets past the query's own limit (the peer cancels its own
/// statements at that limit and says so).
const PEER_GRACE: Duration = Duration::from_secs(2);

thread_local! {
    /// One client per worker thread (`awc::Client` is not `Send`), keeping its
    /// connections to the peers between queries.
    static CLIENT: RefCell<Option<awc::Client>> = const { RefCell::new(None) };
}

/// One query's questions to the cluster, and the shards that did not answer.
pub struct Fanout<'a> {
    state: &'a QueryState,
    tenant: String,
    /// Shard id → why it is missing.
    missing: RefCell<BTreeMap<u32, String>>,
    /// What this node's shards read (owners count theirs).
    read: std::cell::Cell<Read>,
}

impl<'a> Fanout<'a> {
    pub fn new(state: &'a QueryState, tenant: &str) -> Fanout<'a> {
        Fanout {
            state,
            tenant: tenant.to_owned(),
            missing: RefCell::new(BTreeMap::new()),
            read: std::cell::Cell::new(Read::default()),
        }
    }

    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// `work` on every shard, merged.
    ///
    /// # Errors
    /// The query is invalid, or a shard that was reached failed to answer or ran
    /// past the time limit.
    pub async fn ask(&self, work: Work) -> Result<Part, QueryError> {
        let prepared = work.prepare(&self.tenant)?;
        let q = self.state;
        let local: Vec<&Shard> = q.shards.local.iter().collect();
        let local = work.on_all(&local, &prepared, q.timeout_ms);
        let mut owners: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
        for (id, owner) in &q.shards.remote {
            owners.entry(owner).or_default().push(*id);
        }
        let remote = futures_util::future::join_all(
            owners
                .iter()
                .map(|(owner, ids)| self.remote(owner, ids, &work)),
        );
        let (local, remote) = futures_util::future::join(local, remote).await;
        let (local, read) = local?;
        let mut total = self.read.get();
        total += read;
        self.read.set(total);
        let mut parts = vec![local];
        for ((owner, ids), part) in owners.iter().zip(remote) {
            match part {
                Ok(part) => parts.push(part),
                Err(Unreached(why)) => {
                    tracing::warn!(node = owner, error = %why, "a node did not answer a query");
                    let mut missing = self.missing.borrow_mut();
                    for id in ids {
                        missing.insert(*id, format!("node {owner} did not answer: {why}"));
                    }
                }
                Err(Failed(e)) => return Err(e),
            }
        }
        work.merge(parts)
    }

    async fn remote(&self, owner: &str, ids: &[u32], work: &Work) -> Result<Part, PeerError> {
        let q = self.state;
        let (url, credentials, client) = peer(q, owner).map_err(Unreached)?;
        let ask = Ask {
            tenant: self.tenant.clone(),
            shards: ids.to_vec(),
            work: work.clone(),
        };
        let timeout = Duration::from_millis(q.timeout_ms) + PEER_GRACE;
        let endpoint = format!("{}{QUERY_PATH}", url.trim_end_matches('/'));
        let mut response = credentials
            .sign(client.post(endpoint), owner)
            .timeout(timeout)
            .send_json(&ask)
            .await
            .map_err(|e| Unreached(e.to_string()))?;
        let status = response.status();
        let body = response
            .body()
            .limit(MAX_PART_BYTES)
            .await
            .map_err(|e| Unreached(format!("its answer could not be read: {e}")))?;
        if status.as_u16() == 401 {
            credentials.refused_by(owner);
        }
        if status.is_success() {
            return match serde_json::from_slice::<Part>(&body) {
                Ok(part) if part.answers(work) => Ok(part),
                _ => Err(Unreached("its answer is not a query part".into())),
            };
        }
        // The query error a peer states, as the node asked states it.
        let error: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let text = error["error"].as_str().unwrap_or_default().to_owned();
        match (status.as_u16(), error["errorType"].as_str()) {
            (400, Some("bad_data")) => Err(Failed(QueryError::Invalid(text))),
            (503, Some("timeout")) => Err(Failed(QueryError::Timeout(q.timeout_ms))),
            (503, Some("unavailable")) => Err(Failed(QueryError::Unavailable(text))),
            _ => Err(Unreached(format!(
                "{status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(512)]).trim()
            ))),
        }
    }

    /// What this node's shards read so far.
    pub fn read(&self) -> Read {
        self.read.get()
    }

    /// The shards whose nodes did not answer, in id order.
    pub fn missing(&self) -> Vec<u32> {
        self.missing.borrow().keys().copied().collect()
    }

    /// One warning per shard left out, naming it and why.
    pub fn warnings(&self) -> Vec<String> {
        self.missing
            .borrow()
            .iter()
            .map(|(id, why)| format!("shard {id} is missing from this answer: {why}"))
            .collect()
    }
}

/// Node `owner`'s URL, how this node signs its requests, and this worker's client
/// (its default timeout: the query's time limit and the grace).
fn peer<'s>(
    state: &'s QueryState,
    owner: &str,
) -> Result<(&'s str, &'s crate::batch::wire::Credentials, awc::Client), String> {
    let (Some(url), Some(credentials)) = (state.peers.get(owner), state.credentials.as_ref())
    else {
        return Err("its address is not known".into());
    };
    let client = CLIENT.with(|c| {
        c.borrow_mut()
            .get_or_insert_with(|| {
                crate::tls::http_client(
                    Duration::from_millis(state.timeout_ms) + PEER_GRACE,
                    credentials.tls.clone(),
                )
            })
            .clone()
    });
    Ok((url, credentials, client))
}

/// Path of the route owners stream their tails on.
pub const TAIL_PATH: &str = "/internal/v1/tail";

/// How long a tail waits before following a node again that it lost.
const FOLLOW_RETRY: Duration = Duration::from_secs(2);

/// What a node asks a peer to tail.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Follow {
    pub tenant: String,
    pub shards: Vec<u32>,
    pub query: String,
}

/// Follows the tail of `follow` on node `owner`: its chunks go to `tx` as they
/// come, until `tx` closes. A failure is told to `tx` as [`Event::Lost`], and the
/// node is followed again after [`FOLLOW_RETRY`]. `ready` is told (or dropped)
/// once the first attempt has the peer's stream, which the peer answers only
/// once it follows its writes, or has failed.
pub async fn follow_peer(
    state: std::sync::Arc<QueryState>,
    owner: String,
    follow: Follow,
    tx: tokio::sync::mpsc::Sender<Event>,
    ready: tokio::sync::oneshot::Sender<()>,
) {
    use futures_util::StreamExt;
    let mut lost = false;
    let mut ready = Some(ready);
    while !tx.is_closed() {
        let why = async {
            let (url, credentials, client) = match peer(&state, &owner) {
                Ok(peer) => peer,
                Err(why) => return why,
            };
            let endpoint = format!("{}{TAIL_PATH}", url.trim_end_matches('/'));
            let mut response = match credentials
                .sign(client.post(endpoint), &owner)
                .timeout(PEER_GRACE * 5)
                .send_json(&follow)
                .await
            {
                Ok(r) if r.status().is_success() => {
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    r
                }
                Ok(r) if r.status().as_u16() == 401 => {
                    credentials.refused_by(&owner);
                    return format!("it answered {}", r.status());
                }
                Ok(r) => return format!("it answered {}", r.status()),
                Err(e) => return e.to_string(),
            };
            if lost {
                let _ = tx
                    .send(Event::Back {
                        node: owner.clone(),
                    })
                    .await;
                lost = false;
            }
            let mut pending = bytes::BytesMut::new();
            while let Some(bytes) = response.next().await {
                let bytes = match bytes {
                    Ok(b) => b,
                    Err(e) => return format!("its stream broke: {e}"),
                };
                pending.extend_from_slice(&bytes);
                if pending.len() > MAX_PART_BYTES {
                    return "it sent a line too long".into();
                }
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line = pending.split_to(end + 1);
                    let Ok(chunk) = serde_json::from_slice::<Chunk>(&line[..end]) else {
                        return "it sent a line that is not a tail chunk".into();
                    };
                    // A keep-alive line is when a tail that has ended finds out,
                    // and lets go of the peer's stream.
                    if tx.is_closed()
                        || (chunk != Chunk::default()
                            && tx.send(Event::Chunk(chunk)).await.is_err())
                    {
                        return String::new();
                    }
                }
            }
            "it ended the stream".into()
        }
        .await;
        // The first attempt failed: nobody waits for this peer any longer.
        ready.take();
        if tx.is_closed() {
            return;
        }
        if !lost {
            tracing::warn!(node = owner, error = %why, "lost a peer's tail");
            let _ = tx
                .send(Event::Lost {
                    node: owner.clone(),
                    why,
                })
                .await;
            lost = true;
        }
        tokio::time::sleep(FOLLOW_RETRY).await;
    }
}

/// Why a peer's part is not there.
enum PeerError {
    /// The node did not answer: its shards are missing from the answer.
    Unreached(String),
    /// The node answered that the query failed: the query fails.
    Failed(QueryError),
}

use PeerError::{Failed, Unreached};
