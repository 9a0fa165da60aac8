//! The syslog sockets: UDP, TCP, TLS and Unix datagram listeners.
//!
//! Every listener parses what arrives ([`parse`], with [`Framer`] for streams) and
//! hands records to the shard-router in groups: a group goes once it holds
//! [`GROUP_RECORDS`] records or its first record has waited `syslog.group_commit_ms`,
//! and its records are durable (fsynced in their shard's queue) when the router
//! answers. Syslog has no acknowledgement, so the counts tell the story:
//! `chute_records_received_total{source="syslog"}` (parsed into records),
//! `chute_records_accepted_total{source="syslog"}` (durable) and
//! `chute_records_rejected_total{source="syslog"}` (dropped, with the reason).
//!
//! Backpressure: a stream connection keeps at most two groups going (one being
//! made durable while the next is read); past that its reads pause, so the
//! sender's TCP window fills. A full queue is retried, never dropped. Memory is
//! bounded in bytes as well: a group goes at [`GROUP_BYTES`] of messages, and the
//! groups on their way to disk, all listeners together, hold at most 64 MiB of
//! messages; past that every connection pauses reading until some are durable.
//! UDP and Unix datagrams cannot wait: a group refused by a full queue is dropped
//! and counted (`reason="backpressure"`).
//!
//! Tenants: every record of a listener gets its `tenant`, or on a mutual-TLS
//! listener with `client_tenants`, the tenant its client's certificate maps to
//! ([`ClientTenants`]). The tenant's rate limits (`[limits]`) apply as they can: a
//! stream that read more than its tenant's buckets hold stops reading until they
//! refill (its sender's TCP window fills; nothing is lost), and a datagram over
//! the limit is dropped and counted (`reason="rate_limited"`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Addr;
use anyhow::Context as _;
use chrono::{DateTime, Utc};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket, UnixDatagram};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::clients::ClientTenants;
use super::framing::Framer;
use super::{parse, Format, Origin, Parsed, Timezone};
use crate::actors::router::{Layout, Router};
use crate::actors::{DeliverError, RouteParts, Rows};
use crate::batch::EncodedRows;
use crate::config::{ListenerConfig, Protocol};
use crate::limits::{Action, Limits};
use crate::metrics::Metrics;
use crate::record::Record;

/// A group goes to the router once it holds this many records.
pub const GROUP_RECORDS: usize = 2000;
/// Largest datagram read (UDP's own limit).
const DATAGRAM_BYTES: usize = 65_536;
/// Stream read size.
const READ_BYTES: usize = 64 * 1024;
/// A group goes once its messages hold this many bytes, whatever their count.
const GROUP_BYTES: usize = 512 * 1024;
/// Message bytes in groups on their way to disk, all syslog listeners together,
/// in KiB (64 MiB); past it, connections pause reading until groups are durable.
const INFLIGHT_KIB: u32 = 64 * 1024;
/// Groups on their way to disk at once per stream connection; past it reading waits.
const STREAM_GROUPS_IN_FLIGHT: usize = 2;
/// Datagram groups in flight at once per listener; past it reading waits.
const DATAGRAM_GROUPS_IN_FLIGHT: usize = 4;

/// Where a listener ended up listening.
#[derive(Debug, Clone)]
pub struct Bound {
    pub label: String,
    pub protocol: Protocol,
    /// The bound address (port 0 resolved), for network listeners.
    pub addr: Option<SocketAddr>,
    pub path: Option<PathBuf>,
}

/// What every task of one listener shares.
struct Shared {
    label: String,
    format: Format,
    timezone: Timezone,
    /// The tenant of the listener's records, unless `client_tenants` says otherwise.
    tenant: Arc<str>,
    /// Mutual TLS: the tenant by a name in the client's certificate.
    client_tenants: ClientTenants,
    limits: Arc<Limits>,
    /// When a rate limit was last logged (one line per 10 s at most).
    limited_logged: std::sync::Mutex<Option<Instant>>,
    /// Live (SIGHUP): read when a connection starts or a message is parsed.
    max_message_bytes: AtomicUsize,
    idle_timeout_ms: AtomicU64,
    group_commit: Duration,
    router: Addr<Router>,
    /// How the router maps records to shards: groups are split and encoded here.
    layout: Layout,
    metrics: Arc<Metrics>,
    /// The byte budget of groups in flight, shared by every listener
    /// ([`INFLIGHT_KIB`] permits of 1 KiB).
    inflight: Arc<Semaphore>,
}

impl Shared {
    /// Logs that `tenant` was held back by its rate limit, at most once per 10 s:
    /// the metric counts every time.
    fn log_limited(&self, tenant: &str, limit: &str, action: Action) {
        let mut last = self
            .limited_logged
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(10)) {
            return;
        }
        *last = Some(Instant::now());
        tracing::warn!(listener = %self.label, tenant, limit, action = action.label(), "a tenant is over its rate limit ([limits]); see chute_rate_limited_total");
    }

    /// Whether a datagram of `bytes` is within the listener's tenant's rate
    /// limits; one that is not is dropped, counted and logged.
    fn admit_datagram(&self, bytes: usize) -> bool {
        if !self.limits.any() {
            return true;
        }
        let Err(refusal) = self.limits.admit(&self.tenant, 1, bytes, Action::Dropped) else {
            return true;
        };
        self.metrics
            .records_rejected
            .with_label_values(&["syslog", "rate_limited"])
            .inc();
        self.log_limited(&self.tenant, refusal.limit(), Action::Dropped);
        false
    }

    fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.load(Ordering::Relaxed))
    }

    /// Takes room in the in-flight budget for a group of `bytes`, waiting (and
    /// counting a pause: reading stops meanwhile) while other groups fill it.
    /// The room is given back when the permit is dropped, once the group is durable.
    async fn hold(&self, bytes: usize) -> Option<OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, INFLIGHT_KIB);
        if let Ok(permit) = self.inflight.clone().try_acquire_many_owned(kib) {
            return Some(permit);
        }
        self.metrics
            .syslog_paused
            .with_label_values(&[&self.label])
            .inc();
        // The semaphore is never closed, so this waits rather than fails.
        self.inflight.clone().acquire_many_owned(kib).await.ok()
    }
}

/// A running listener's settings that can change without a restart.
#[derive(Clone)]
pub struct Live(Arc<Shared>);

impl Live {
    /// The listener's label.
    pub fn label(&self) -> &str {
        &self.0.label
    }

    /// Applies `max_message_bytes` (to messages and new connections) and
    /// `idle_timeout_ms` (to the next read of every connection).
    pub fn update(&self, l: &ListenerConfig) {
        self.0
            .max_message_bytes
            .store(l.max_message_bytes, Ordering::Relaxed);
        self.0
            .idle_timeout_ms
            .store(l.idle_timeout_ms, Ordering::Relaxed);
    }
}

/// Where listeners hand their records, and what they answer to.
pub struct Sinks {
    pub router: Addr<Router>,
    pub layout: Layout,
    pub metrics: Arc<Metrics>,
    pub limits: Arc<Limits>,
}

/// Binds every listener and starts serving it until `stop` turns true.
///
/// # Errors
/// A socket cannot be bound, or a TLS certificate or key cannot be read.
pub async fn start(
    listeners: &[ListenerConfig],
    group_commit: Duration,
    sinks: Sinks,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<(Vec<Bound>, Vec<Live>, Vec<tokio::task::JoinHandle<()>>)> {
    let Sinks {
        router,
        layout,
        metrics,
        limits,
    } = sinks;
    let mut bound = Vec::new();
    let mut live = Vec::new();
    let mut tasks = Vec::new();
    let inflight = Arc::new(Semaphore::new(INFLIGHT_KIB as usize));
    for l in listeners {
        let label = l.label();
        let shared = Arc::new(Shared {
            label: label.clone(),
            format: l.format,
            timezone: l.timezone.parse().context("invalid timezone")?,
            tenant: l.tenant.as_str().into(),
            client_tenants: ClientTenants::new(&l.client_tenants),
            limits: limits.clone(),
            limited_logged: std::sync::Mutex::new(None),
            max_message_bytes: AtomicUsize::new(l.max_message_bytes),
            idle_timeout_ms: AtomicU64::new(l.idle_timeout_ms),
            group_commit,
            router: router.clone(),
            layout,
            metrics: metrics.clone(),
            inflight: inflight.clone(),
        });
        metrics
            .syslog_connections
            .with_label_values(&[&label])
            .set(0);
        live.push(Live(shared.clone()));
        let stop = stop.clone();
        let (addr, path) = match l.protocol {
            Protocol::Udp => {
                let at = l.address.context("udp needs an address")?;
                let socket = UdpSocket::bind(at)
                    .await
                    .with_context(|| format!("cannot bind udp {at}"))?;
                let addr = socket.local_addr()?;
                tasks.push(actix_web::rt::spawn(serve_datagrams(
                    Datagrams::Udp(socket),
                    shared,
                    stop,
                )));
                (Some(addr), None)
            }
            Protocol::Unix => {
                let path = l.path.clone().context("unix needs a path")?;
                let socket = bind_unix(&path, l.socket_mode)?;
                tasks.push(actix_web::rt::spawn(serve_datagrams(
                    Datagrams::Unix(socket),
                    shared,
                    stop,
                )));
                (None, Some(path))
            }
            Protocol::Tcp | Protocol::Tls => {
                let at = l.address.context("tcp and tls need an address")?;
                let tls = match l.protocol {
                    Protocol::Tls => Some(tokio_rustls::TlsAcceptor::from(tls_config(l)?)),
                    _ => None,
                };
                let listener = TcpListener::bind(at)
                    .await
                    .with_context(|| format!("cannot bind tcp {at}"))?;
                let addr = listener.local_addr()?;
                let limit = Arc::new(Semaphore::new(l.max_connections));
                tasks.push(actix_web::rt::spawn(serve_streams(
                    listener, tls, limit, shared, stop,
                )));
                (Some(addr), None)
            }
        };
        tracing::info!(listener = %label, addr = ?addr, path = ?path, "syslog listener ready");
        bound.push(Bound {
            label,
            protocol: l.protocol,
            addr,
            path,
        });
    }
    Ok((bound, live, tasks))
}

/// Binds a Unix datagram socket with permissions `mode`, replacing a stale socket
/// file: never another kind of file, and never a socket another process still
/// receives on (a second chute, or the system's syslog daemon on /dev/log).
fn bind_unix(path: &Path, mode: u32) -> anyhow::Result<UnixDatagram> {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            anyhow::bail!("{} exists and is not a socket", path.display());
        }
        let probe = std::os::unix::net::UnixDatagram::unbound()?;
        if probe.connect(path).is_ok() {
            anyhow::bail!(
                "another process receives on {}; stop it or choose another path",
                path.display()
            );
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove stale socket {}", path.display()))?;
    }
    let socket =
        UnixDatagram::bind(path).with_context(|| format!("cannot bind unix {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("cannot set the mode of {}", path.display()))?;
    Ok(socket)
}

/// The server side of TLS, from the listener's PEM files.
fn tls_config(l: &ListenerConfig) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let cert_file = l.cert_file.as_ref().context("tls needs cert_file")?;
    let key_file = l.key_file.as_ref().context("tls needs key_file")?;
    let mut config = crate::tls::server_config(cert_file, key_file, l.client_ca_file.as_deref())?;
    // Syslog over TLS (RFC 5425) negotiates no application protocol.
    Arc::make_mut(&mut config).alpn_protocols.clear();
    Ok(config)
}

/// Records gathered for the router, with what was wrong with them: counted into
/// the metrics once per group, not once per message.
struct Group {
    shared: Arc<Shared>,
    /// The tenant of the group's records.
    tenant: Arc<str>,
    records: Vec<Record>,
    /// Bytes of the group's messages as received.
    bytes: usize,
    since: Option<Instant>,
    tally: Tally,
}

/// Per-group counts of the messages' flags.
#[derive(Default)]
struct Tally {
    malformed: u64,
    truncated: u64,
    invalid_utf8: u64,
    nul: u64,
}

impl Group {
    fn new(shared: Arc<Shared>, tenant: Arc<str>) -> Group {
        Group {
            shared,
            tenant,
            records: Vec::new(),
            bytes: 0,
            since: None,
            tally: Tally::default(),
        }
    }

    /// Parses one message, received at `received_at`, into the group.
    fn add(&mut self, msg: &[u8], truncated: bool, peer: Option<&str>, received_at: DateTime<Utc>) {
        let s = &self.shared;
        let origin = Origin {
            received_at,
            tenant: &self.tenant,
            format: s.format,
            timezone: &s.timezone,
            max_message_bytes: s.max_message_bytes.load(Ordering::Relaxed),
            peer_host: peer,
        };
        let mut parsed: Parsed = parse(msg, &origin);
        if truncated {
            parsed.mark_truncated();
        }
        let (f, t) = (parsed.flags, &mut self.tally);
        t.malformed += u64::from(f.malformed);
        t.truncated += u64::from(f.truncated);
        t.invalid_utf8 += u64::from(f.invalid_utf8);
        t.nul += u64::from(f.nul_replaced);
        self.since.get_or_insert_with(Instant::now);
        self.bytes += msg.len();
        self.records.push(parsed.record);
    }

    /// When the group must go at the latest.
    fn deadline(&self) -> Option<tokio::time::Instant> {
        self.since
            .map(|t| tokio::time::Instant::from_std(t + self.shared.group_commit))
    }

    fn due(&self) -> bool {
        self.records.len() >= GROUP_RECORDS
            || self.bytes >= GROUP_BYTES
            || self
                .since
                .is_some_and(|t| t.elapsed() >= self.shared.group_commit)
    }

    /// The group's records; counts them into the listener's metrics.
    fn take(&mut self) -> Vec<Record> {
        self.bytes = 0;
        let (m, l) = (&self.shared.metrics, [self.shared.label.as_str()]);
        let t = std::mem::take(&mut self.tally);
        let n = self.records.len() as u64;
        m.syslog_messages.with_label_values(&l).inc_by(n);
        m.syslog_parsed
            .with_label_values(&l)
            .inc_by(n - t.malformed);
        for (counter, count) in [
            (&m.syslog_malformed, t.malformed),
            (&m.syslog_truncated, t.truncated),
        ] {
            if count > 0 {
                counter.with_label_values(&l).inc_by(count);
            }
        }
        for (reason, count) in [("invalid_utf8", t.invalid_utf8), ("nul", t.nul)] {
            if count > 0 {
                m.records_sanitized
                    .with_label_values(&["syslog", reason])
                    .inc_by(count);
            }
        }
        self.since = None;
        std::mem::take(&mut self.records)
    }
}

/// Hands records to the router and counts the outcome. The group is split by shard
/// and encoded here, on the connection's thread, so a part refused by a full queue
/// is resent as the same bytes and the parts taken are never sent twice. With
/// `wait`, refused parts are retried (the caller's reads stay paused meanwhile);
/// without, they are dropped and counted.
async fn deliver(shared: &Shared, records: Vec<Record>, wait: bool) {
    if records.is_empty() {
        return;
    }
    let m = &shared.metrics;
    m.records_received
        .with_label_values(&["syslog"])
        .inc_by(records.len() as u64);
    let mut parts: Vec<(usize, Rows)> = Vec::new();
    for (i, part) in shared.layout.split(records) {
        match EncodedRows::encode(&part) {
            Ok(rows) => parts.push((i, Rows::Encoded(rows))),
            Err(e) => {
                // Parsing rules this out; count it rather than lose it silently.
                m.records_rejected
                    .with_label_values(&["syslog", "invalid_record"])
                    .inc_by(part.len() as u64);
                tracing::warn!(listener = %shared.label, records = part.len(), error = %e, "syslog records cannot be encoded; dropped");
            }
        }
    }
    while !parts.is_empty() {
        // Only a stream connection (`wait`) resends refused parts, so only it keeps
        // a copy (the rows are shared bytes; their offsets are copied).
        let sizes: Vec<u64> = parts.iter().map(|(_, rows)| rows.len() as u64).collect();
        let sent = if wait {
            parts.clone()
        } else {
            std::mem::take(&mut parts)
        };
        let outcomes = match shared.router.send(RouteParts { parts: sent }).await {
            Ok(outcomes) => outcomes,
            Err(_) => sizes
                .iter()
                .map(|_| {
                    Err(DeliverError::Stopped {
                        destination: "router".into(),
                    })
                })
                .collect(),
        };
        let mut refused = vec![false; sizes.len()];
        let mut accepted = 0;
        let mut pause = None;
        for (i, outcome) in outcomes.into_iter().enumerate() {
            let n = sizes[i];
            match outcome {
                Ok(()) => accepted += n,
                Err(DeliverError::Full { retry_after, .. }) if wait => {
                    pause = Some(retry_after);
                    refused[i] = true;
                }
                Err(e) => {
                    m.records_rejected
                        .with_label_values(&["syslog", e.reason()])
                        .inc_by(n);
                    tracing::warn!(listener = %shared.label, records = n, error = %e, "syslog records dropped");
                }
            }
        }
        if accepted > 0 {
            m.records_accepted
                .with_label_values(&["syslog"])
                .inc_by(accepted);
        }
        if let Some(after) = pause {
            m.syslog_paused.with_label_values(&[&shared.label]).inc();
            tokio::time::sleep(after).await;
        }
        let mut i = 0;
        parts.retain(|_| {
            i += 1;
            refused[i - 1]
        });
    }
}

enum Datagrams {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Datagrams {
    async fn recv(&self, buf: &mut [u8]) -> std::io::Result<(usize, Option<String>)> {
        match self {
            Datagrams::Udp(s) => s
                .recv_from(buf)
                .await
                .map(|(n, from)| (n, Some(from.ip().to_string()))),
            Datagrams::Unix(s) => s.recv_from(buf).await.map(|(n, _)| (n, None)),
        }
    }
}

/// One datagram is one message. Groups go to the router in the background (a few at
/// a time) so reading goes on while they are made durable.
async fn serve_datagrams(socket: Datagrams, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut buf = vec![0u8; DATAGRAM_BYTES];
    let mut group = Group::new(shared.clone(), shared.tenant.clone());
    let in_flight = Arc::new(Semaphore::new(DATAGRAM_GROUPS_IN_FLIGHT));
    loop {
        let deadline = group.deadline();
        tokio::select! {
            r = socket.recv(&mut buf) => match r {
                Ok((n, peer)) => {
                    shared.metrics.syslog_bytes.with_label_values(&[&shared.label]).inc_by(n as u64);
                    if shared.admit_datagram(n) {
                        // A datagram at the buffer's size may have been cut by the kernel.
                        group.add(&buf[..n], n == DATAGRAM_BYTES, peer.as_deref(), Utc::now());
                    }
                }
                Err(e) => {
                    tracing::warn!(listener = %shared.label, error = %e, "syslog receive failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = sleep_until(deadline) => {}
            _ = stop.changed() => break,
        }
        if group.due() {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let room = shared.hold(group.bytes).await;
            let (records, shared) = (group.take(), shared.clone());
            actix_web::rt::spawn(async move {
                deliver(&shared, records, false).await;
                drop((permit, room));
            });
        }
    }
    deliver(&shared, group.take(), false).await;
    // Wait for the groups still in flight.
    let _ = in_flight
        .acquire_many(DATAGRAM_GROUPS_IN_FLIGHT as u32)
        .await;
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

/// Accepts connections up to the listener's limit; each is served by its own task.
async fn serve_streams(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    limit: Arc<Semaphore>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads: Vec<actix::Arbiter> = (0..cores).map(|_| actix::Arbiter::new()).collect();
    let mut next = 0;
    let capacity = limit.available_permits() as u32;
    loop {
        let (socket, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(listener = %shared.label, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared
                .metrics
                .syslog_refused
                .with_label_values(&[&shared.label, "max_connections"])
                .inc();
            tracing::warn!(listener = %shared.label, "connection refused: max_connections reached");
            continue; // dropping the socket closes it
        };
        let (shared, tls, stop) = (shared.clone(), tls.clone(), stop.clone());
        // Connections are spread over one thread per core: parsing is CPU work.
        next = (next + 1) % threads.len();
        threads[next].spawn(async move {
            let gauge = shared
                .metrics
                .syslog_connections
                .with_label_values(&[&shared.label]);
            gauge.inc();
            let peer = peer.ip().to_string();
            match tls {
                None => serve_stream(socket, &peer, shared.tenant.clone(), &shared, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(shared.idle_timeout(), acceptor.accept(socket)).await
                    {
                        Ok(Ok(stream)) => {
                            if let Some(tenant) = client_tenant(&shared, &stream, &peer) {
                                serve_stream(stream, &peer, tenant, &shared, stop).await;
                            }
                        }
                        Ok(Err(e)) => {
                            shared
                                .metrics
                                .syslog_refused
                                .with_label_values(&[&shared.label, "tls_handshake"])
                                .inc();
                            tracing::warn!(listener = %shared.label, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            shared
                                .metrics
                                .syslog_refused
                                .with_label_values(&[&shared.label, "tls_handshake"])
                                .inc();
                        }
                    }
                }
            }
            gauge.dec();
            drop(permit);
        });
    }
    // Every connection delivers what it holds and returns its permit; then the
    // threads can go.
    let _ = limit.acquire_many(capacity).await;
    for t in &threads {
        t.stop();
    }
}

/// The tenant of a TLS connection's records: the listener's, or with
/// `client_tenants` the one its client's certificate maps to. None: the
/// certificate maps to no single tenant; the connection is refused, counted.
fn client_tenant(
    shared: &Shared,
    stream: &tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
    peer: &str,
) -> Option<Arc<str>> {
    if !shared.client_tenants.active() {
        return Some(shared.tenant.clone());
    }
    let der = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|c| c.as_ref());
    match shared.client_tenants.tenant_of(der) {
        Ok(tenant) => Some(tenant.into()),
        Err(e) => {
            shared
                .metrics
                .syslog_refused
                .with_label_values(&[&shared.label, e.reason()])
                .inc();
            tracing::warn!(listener = %shared.label, peer, error = %e, "syslog connection refused: its certificate maps to no tenant (client_tenants)");
            None
        }
    }
}

/// Group deliveries of one stream connection that are on their way to disk.
type InFlight = std::collections::VecDeque<tokio::task::JoinHandle<()>>;

/// Sends the group's records on their way to disk. A few groups may be going while
/// the next is read; past that, this waits for the oldest, so memory stays within
/// a few groups.
async fn send_group(group: &mut Group, in_flight: &mut InFlight, shared: &Arc<Shared>) {
    if group.records.is_empty() {
        return;
    }
    if in_flight.len() >= STREAM_GROUPS_IN_FLIGHT {
        if let Some(oldest) = in_flight.pop_front() {
            let _ = oldest.await;
        }
    }
    let room = shared.hold(group.bytes).await;
    let (shared, records) = (shared.clone(), group.take());
    in_flight.push_back(actix_web::rt::spawn(async move {
        deliver(&shared, records, true).await;
        drop(room);
    }));
}

/// Reads one connection until it closes, idles out, breaks its framing, or chute
/// stops; whatever was read before is kept. Its records belong to `tenant`, whose
/// rate limits pause reading when it sends faster.
async fn serve_stream<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    peer: &str,
    tenant: Arc<str>,
    shared: &Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut framer = Framer::new(shared.max_message_bytes.load(Ordering::Relaxed));
    let mut frames = Vec::new();
    let mut buf = vec![0u8; READ_BYTES];
    let mut group = Group::new(shared.clone(), tenant.clone());
    let mut in_flight = InFlight::new();
    let l = [shared.label.as_str()];
    let limited = shared.limits.any();
    loop {
        let deadline = group.deadline();
        let mut done = false;
        // Records and bytes of this read, charged to the tenant's rate limits.
        let mut read = (0, 0);
        tokio::select! {
            r = tokio::time::timeout(shared.idle_timeout(), stream.read(&mut buf)) => {
                let framed = match r {
                    Err(_) => {
                        shared.metrics.syslog_closed.with_label_values(&[&shared.label, "idle"]).inc();
                        done = true;
                        framer.finish(&mut frames)
                    }
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        done = true;
                        framer.finish(&mut frames)
                    }
                    Ok(Ok(n)) => {
                        shared.metrics.syslog_bytes.with_label_values(&l).inc_by(n as u64);
                        let framed = framer.push(&buf[..n], &mut frames);
                        read = (frames.len(), n);
                        framed
                    }
                };
                // One clock read per read, not per message.
                let now = Utc::now();
                for f in frames.drain(..) {
                    group.add(&f.bytes, f.truncated, Some(peer), now);
                }
                if let Err(e) = framed {
                    shared.metrics.syslog_closed.with_label_values(&[&shared.label, e.reason()]).inc();
                    tracing::warn!(listener = %shared.label, error = %e, "closing a syslog connection: its framing broke; the messages before are kept");
                    done = true;
                }
            }
            _ = sleep_until(deadline) => {}
            _ = stop.changed() => done = true,
        }
        if done {
            break;
        }
        if limited && read != (0, 0) {
            let debt = shared.limits.charge(&tenant, read.0, read.1);
            if let Some(limit) = debt.short_of() {
                // What was read goes on to disk while reading waits.
                send_group(&mut group, &mut in_flight, shared).await;
                shared.limits.count(&tenant, limit, Action::Paused);
                shared.log_limited(&tenant, limit, Action::Paused);
                tokio::select! {
                    () = debt.settle() => {}
                    _ = stop.changed() => break,
                }
            }
        }
        if group.due() {
            send_group(&mut group, &mut in_flight, shared).await;
        }
    }
    for group in in_flight {
        let _ = group.await;
    }
    deliver(shared, group.take(), true).await;
    // A clean close (for TLS: close_notify, so the sender knows nothing was cut).
    let _ = stream.shutdown().await;
}
