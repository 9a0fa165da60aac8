//! The crash-safe on-disk queue of one destination (a shard writer, later a peer link).
//!
//! Ingest appends batches and calls [`Queue::sync`] once per group before it
//! acknowledges anything to a sender; the destination's consumer [`Queue::read`]s,
//! commits, then [`Queue::ack`]s. Everything is blocking file I/O, meant for one
//! dedicated thread per queue; the type is `Send` but not shared.
//!
//! On disk (`docs/queue-format.md` has the byte layout and the recovery rules):
//!
//! ```text
//! <data_dir>/queues/<destination>/
//!     00000000000000000001.seg   segments: append-only records, named by the first
//!     00000000000000004711.seg   sequence number they may hold; the last one is written
//!     position                   acknowledged sequence number + next-sequence floor
//!     lock                       flock(2), one process per queue
//!     quarantine/                damaged bytes kept for a person, with notes
//! ```
//!
//! Guarantees, and what they rest on:
//! - After `sync` returns `Ok`, every entry appended before it survives `kill -9` and
//!   power loss (`fdatasync` of the last segment; every older segment was synced
//!   before the next one was created; the directory is synced after a segment is
//!   created).
//! - After an `fdatasync` failure nothing is trusted any more: the queue is poisoned
//!   and refuses appends and syncs until it is reopened (PostgreSQL's "fsyncgate").
//! - Opening never fails on bad data, only on I/O errors: a torn tail is cut off, a
//!   damaged stretch is copied to quarantine and skipped, a segment with nothing valid
//!   in it is moved there. Records after the damage are still delivered.
//! - Sequence numbers only grow, across restarts and after every segment is deleted.
//!   Only a number handed out for an append that was never synced and was lost in a
//!   crash may be handed out again.
//! - Acknowledged entries are not delivered again; entries after the last persisted
//!   acknowledgement may be, after a crash (the database dedupes them).

mod format;
mod quarantine;
mod read;
mod recovery;
mod scan;
mod verify;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub use format::MAX_PAYLOAD_BYTES;
pub use verify::{verify, PositionFile, VerifyReport};

use format::{segment_name, Header, HEADER_LEN_U64};
use quarantine::Quarantine;
use read::ReadCursor;

/// Queue files hold log records: readable by chute's user alone, whatever the
/// umask (it can only take bits away).
const FILE_MODE: u32 = 0o600;
/// Directories of a queue, for the same reason.
const DIR_MODE: u32 = 0o700;

const POSITION_FILE: &str = "position";
const POSITION_TMP: &str = "position.tmp";
const LOCK_FILE: &str = "lock";
const QUARANTINE_DIR: &str = "quarantine";

/// Appends of at most this many payload bytes are copied behind their header and
/// written with one `pwrite`; larger ones take two, which costs less than the copy.
const COALESCE_MAX: usize = 256 * 1024;

/// Limits of one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueOptions {
    /// Most bytes (headers included) of unacknowledged entries on disk; an append
    /// past it is refused with [`QueueError::Full`], which ingest turns into
    /// backpressure. Disk use can exceed it by up to one segment of consumed entries.
    pub max_bytes: u64,
    /// Size at which the next append starts a new segment file. Consumed space is
    /// given back a whole segment at a time, so smaller segments return it sooner and
    /// larger ones mean fewer files. An entry larger than this gets a segment of its own.
    pub segment_bytes: u64,
}

impl Default for QueueOptions {
    fn default() -> Self {
        QueueOptions {
            max_bytes: 1 << 30,
            segment_bytes: 64 << 20,
        }
    }
}

/// One delivered entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number; acknowledge up to it with [`Queue::ack`].
    pub seq: u64,
    /// When it was appended (from its header), for end-to-end latency.
    pub appended_at: SystemTime,
    /// The bytes given to [`Queue::append`].
    pub payload: Vec<u8>,
}

/// What [`Queue::open`] found and repaired; each field is worth a log line and a
/// counter, and a non-zero `corrupt_records` or `quarantined_segments` an alert.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the last segment: a record whose write a crash
    /// interrupted (never acknowledged, since its sync had not returned).
    pub torn_bytes_truncated: u64,
    /// Damaged stretches copied to quarantine and skipped.
    pub corrupt_records: u64,
    /// Bytes copied or moved to quarantine.
    pub quarantined_bytes: u64,
    /// Segments with nothing valid in them, moved to quarantine whole.
    pub quarantined_segments: u64,
    /// The position file was damaged: reading starts again from the oldest entry on
    /// disk (duplicates, which the database dedupes, rather than loss).
    pub position_reset: bool,
}

/// A snapshot for metrics and `/readyz`; cheap, no I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    /// Bytes on disk from the first unacknowledged entry to the end, headers included
    /// (what [`QueueOptions::max_bytes`] limits).
    pub unacked_bytes: u64,
    /// Entries appended and not yet acknowledged.
    pub unacked_entries: u64,
    /// Sequence number of the oldest unacknowledged entry.
    pub first_unacked_seq: Option<u64>,
    /// When the oldest unacknowledged entry was appended (kept in its header, so it
    /// survives restarts): the queue's lag.
    pub oldest_unacked_append: Option<SystemTime>,
    /// Segment files.
    pub segments: usize,
    /// Bytes in all segment files, consumed ones included.
    pub disk_bytes: u64,
    /// The sequence number the next append gets.
    pub next_seq: u64,
    /// Every entry up to this one is acknowledged (0: none yet).
    pub acked_seq: u64,
    /// Every entry up to this one is durable.
    pub synced_seq: u64,
    /// Damaged stretches quarantined since open (recovery's included).
    pub corrupt_records: u64,
    /// Bytes quarantined since open (recovery's included).
    pub quarantined_bytes: u64,
    /// An fsync or write failed; the queue must be reopened.
    pub poisoned: bool,
}

/// Why a queue operation failed.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Appending would pass [`QueueOptions::max_bytes`]; nothing was written. The
    /// caller should push back on senders until the consumer catches up.
    #[error("queue is full: {unacked_bytes} unacknowledged bytes plus an entry of {entry_bytes} would pass the limit of {max_bytes}")]
    Full {
        unacked_bytes: u64,
        entry_bytes: u64,
        max_bytes: u64,
    },
    /// The entry can never fit (above [`MAX_PAYLOAD_BYTES`] or the queue's limit).
    #[error("entry of {bytes} bytes is larger than this queue can ever hold ({limit} bytes)")]
    TooLarge { bytes: u64, limit: u64 },
    /// An earlier fsync or write failed; appends and syncs are refused until the
    /// queue is reopened, since the kernel may have dropped data it had accepted.
    #[error("queue is poisoned by an earlier write or fsync failure; it must be reopened")]
    Poisoned,
    /// An acknowledgement for entries that were never synced (a consumer bug).
    #[error("cannot acknowledge up to {upto}: only entries up to {synced} are synced")]
    AckBeyondSynced { upto: u64, synced: u64 },
    /// Another queue (in this or another process) has the directory open.
    #[error("queue directory {} is in use by another process or queue", dir.display())]
    Locked { dir: PathBuf },
    /// The options cannot work.
    #[error("invalid queue options: {0}")]
    InvalidOptions(&'static str),
    /// A file operation failed.
    #[error("queue I/O failed: {op} {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl QueueError {
    /// A bounded label for metrics (never the message, which holds paths).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Full { .. } => "full",
            Self::TooLarge { .. } => "too_large",
            Self::Poisoned => "poisoned",
            Self::AckBeyondSynced { .. } => "ack_beyond_synced",
            Self::Locked { .. } => "locked",
            Self::InvalidOptions(_) => "invalid_options",
            Self::Io { .. } => "io",
        }
    }

    /// Whether the same call may succeed later on this queue: a full queue drains, a
    /// failed write (a full disk) may pass once space is freed. A poisoned queue needs
    /// reopening; the other errors are bugs or configuration.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Full { .. } | Self::Io { .. })
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A byte position in the queue: offset `offset` of segment `base`.
/// Ordered as the bytes are, since segment bases grow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Pos {
    base: u64,
    offset: u64,
}

/// One segment file.
#[derive(Debug)]
struct Segment {
    /// The first sequence number it may hold (every record in it is ≥ this and below
    /// the next segment's base); also its file name.
    base: u64,
    path: PathBuf,
    /// Bytes written (for the last segment, including unsynced ones).
    len: u64,
}

/// The durable queue of one destination. See the module documentation.
pub struct Queue {
    dir: PathBuf,
    opts: QueueOptions,
    /// Held for the queue's lifetime: two writers on one directory would interleave
    /// records.
    _lock: Flock<File>,
    /// Sorted by base; never empty, the last one is written to.
    segments: Vec<Segment>,
    /// Write handle of the last segment.
    active: File,
    next_seq: u64,
    /// Persisted acknowledgement: every entry ≤ this is consumed.
    acked: u64,
    /// Everything before this position is durable; readers stop here.
    synced: Pos,
    /// The last sequence number before `synced`.
    synced_seq: u64,
    /// A segment was created since the last sync, so the directory needs an fsync too.
    dir_dirty: bool,
    /// The first unacknowledged byte; segments before its segment are deleted.
    head: Pos,
    /// (sequence number, append time) of the first unacknowledged entry.
    head_entry: Option<(u64, u64)>,
    unacked_bytes: u64,
    unacked_entries: u64,
    cursor: Option<ReadCursor>,
    quarantine: Quarantine,
    /// An fsync or write failed; see [`QueueError::Poisoned`].
    poisoned: bool,
    /// Reused buffer for header + small payload, so an append is one `pwrite`.
    scratch: Vec<u8>,
}

impl Queue {
    /// The entry's length and its length with the header, if an entry of
    /// `payload_len` bytes fits after `ahead` more bytes of entries (headers included).
    fn fits(&self, payload_len: usize, ahead: u64) -> Result<(u32, u64), QueueError> {
        let record_len = HEADER_LEN_U64 + payload_len as u64;
        let len = match u32::try_from(payload_len) {
            Ok(len) if len <= MAX_PAYLOAD_BYTES && record_len <= self.opts.max_bytes => len,
            _ => {
                return Err(QueueError::TooLarge {
                    bytes: payload_len as u64,
                    limit: u64::from(MAX_PAYLOAD_BYTES).min(self.opts.max_bytes - HEADER_LEN_U64),
                })
            }
        };
        if self.unacked_bytes + ahead + record_len > self.opts.max_bytes {
            return Err(QueueError::Full {
                unacked_bytes: self.unacked_bytes + ahead,
                entry_bytes: record_len,
                max_bytes: self.opts.max_bytes,
            });
        }
        Ok((len, record_len))
    }

    /// Appends several entries, all or none: if any cannot fit (the queue would be
    /// full before the last, or one is too large), nothing is written. Returns the
    /// last entry's sequence number. Like [`Queue::append`], the entries become
    /// durable at the next [`Queue::sync`].
    ///
    /// # Errors
    /// As [`Queue::append`]. An I/O failure after some entries were written poisons
    /// the queue (the written ones cannot be taken back), so none of them is ever
    /// acknowledged as durable.
    pub fn append_all(&mut self, payloads: &[Vec<u8>]) -> Result<u64, QueueError> {
        if self.poisoned {
            return Err(QueueError::Poisoned);
        }
        let mut ahead = 0;
        for p in payloads {
            ahead += self.fits(p.len(), ahead)?.1;
        }
        let mut last = self.next_seq.saturating_sub(1);
        for (i, p) in payloads.iter().enumerate() {
            match self.append(p) {
                Ok(seq) => last = seq,
                Err(e) => {
                    if i > 0 {
                        self.poisoned = true;
                    }
                    return Err(e);
                }
            }
        }
        Ok(last)
    }

    /// Appends one entry and returns its sequence number. The entry is written to the
    /// file (the page cache) but is not durable, nor readable, until [`Queue::sync`].
    ///
    /// # Errors
    /// - [`QueueError::Full`]: the unacknowledged bytes would pass `max_bytes`;
    ///   nothing was written.
    /// - [`QueueError::TooLarge`]: the entry can never fit.
    /// - [`QueueError::Poisoned`]: an earlier fsync or write failed.
    /// - [`QueueError::Io`]: the write failed; it was undone (the file truncated back),
    ///   or, if even that failed, the queue is poisoned.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64, QueueError> {
        if self.poisoned {
            return Err(QueueError::Poisoned);
        }
        let (len, record_len) = self.fits(payload.len(), 0)?;
        if self.active_len() > 0 && self.active_len() + record_len > self.opts.segment_bytes {
            self.roll()?;
        }
        let seq = self.next_seq;
        let appended_ms = now_ms();
        let header = Header {
            len,
            seq,
            appended_ms,
            payload_crc: crc32c::crc32c(payload),
        }
        .encode();
        let at = self.active_len();
        let written = if payload.len() <= COALESCE_MAX {
            self.scratch.clear();
            self.scratch.extend_from_slice(&header);
            self.scratch.extend_from_slice(payload);
            self.active.write_all_at(&self.scratch, at)
        } else {
            self.active
                .write_all_at(&header, at)
                .and_then(|()| self.active.write_all_at(payload, at + HEADER_LEN_U64))
        };
        if let Err(e) = written {
            return Err(self.undo_write(at, e));
        }
        self.next_seq += 1;
        if let Some(last) = self.segments.last_mut() {
            last.len += record_len;
        }
        self.unacked_bytes += record_len;
        self.unacked_entries += 1;
        if self.head_entry.is_none() {
            self.head_entry = Some((seq, appended_ms));
        }
        Ok(seq)
    }

    /// Makes every entry appended so far durable (`fdatasync`, plus the directory
    /// when a segment was created) and readable. Call it once per group of appends,
    /// and acknowledge to senders only after it returned `Ok`.
    ///
    /// # Errors
    /// [`QueueError::Poisoned`] after an earlier failure; [`QueueError::Io`] when the
    /// fsync fails, which also poisons the queue: the kernel may have dropped the
    /// pages, so a later successful fsync would prove nothing.
    pub fn sync(&mut self) -> Result<(), QueueError> {
        if self.poisoned {
            return Err(QueueError::Poisoned);
        }
        let end = self.end_pos();
        if end == self.synced && !self.dir_dirty {
            return Ok(());
        }
        if let Err(e) = self.active.sync_data() {
            self.poisoned = true;
            tracing::error!(error = %e, dir = %self.dir.display(), "fdatasync of the queue failed; the queue is poisoned.");
            return Err(io_err("fdatasync", &self.active_path())(e));
        }
        if self.dir_dirty {
            if let Err(e) = fsync_dir(&self.dir) {
                self.poisoned = true;
                tracing::error!(error = %e, dir = %self.dir.display(), "fsync of the queue directory failed; the queue is poisoned.");
                return Err(io_err("fsync directory", &self.dir)(e));
            }
            self.dir_dirty = false;
        }
        self.synced = end;
        self.synced_seq = self.next_seq - 1;
        Ok(())
    }

    /// Counters and positions for metrics; no I/O.
    pub fn stats(&self) -> Stats {
        Stats {
            unacked_bytes: self.unacked_bytes,
            unacked_entries: self.unacked_entries,
            first_unacked_seq: self.head_entry.map(|(seq, _)| seq),
            oldest_unacked_append: self
                .head_entry
                .map(|(_, ms)| UNIX_EPOCH + Duration::from_millis(ms)),
            segments: self.segments.len(),
            disk_bytes: self.segments.iter().map(|s| s.len).sum(),
            next_seq: self.next_seq,
            acked_seq: self.acked,
            synced_seq: self.synced_seq,
            corrupt_records: self.quarantine.corrupt_records,
            quarantined_bytes: self.quarantine.quarantined_bytes,
            poisoned: self.poisoned,
        }
    }

    /// The directory this queue lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn active_len(&self) -> u64 {
        self.segments.last().map_or(0, |s| s.len)
    }

    fn active_path(&self) -> PathBuf {
        self.segments
            .last()
            .map_or_else(|| self.dir.clone(), |s| s.path.clone())
    }

    fn end_pos(&self) -> Pos {
        self.segments.last().map_or(self.head, |s| Pos {
            base: s.base,
            offset: s.len,
        })
    }

    fn seg_idx(&self, base: u64) -> Option<usize> {
        self.segments.binary_search_by_key(&base, |s| s.base).ok()
    }

    /// Bytes from `pos` to the end of the queue.
    fn bytes_from(&self, pos: Pos) -> u64 {
        let total: u64 = self
            .segments
            .iter()
            .filter(|s| s.base >= pos.base)
            .map(|s| s.len)
            .sum();
        total.saturating_sub(pos.offset)
    }

    /// How far readers may go in segment `idx`: only synced bytes.
    fn read_bound(&self, idx: usize) -> u64 {
        let Some(seg) = self.segments.get(idx) else {
            return 0;
        };
        match seg.base.cmp(&self.synced.base) {
            std::cmp::Ordering::Less => seg.len,
            std::cmp::Ordering::Equal => self.synced.offset.min(seg.len),
            std::cmp::Ordering::Greater => 0,
        }
    }

    /// Seals the last segment and starts a new one named after the next sequence
    /// number. The old segment is synced first, so a torn write can only ever be at
    /// the end of the last segment, which is what recovery assumes.
    fn roll(&mut self) -> Result<(), QueueError> {
        if let Err(e) = self.active.sync_data() {
            self.poisoned = true;
            tracing::error!(error = %e, dir = %self.dir.display(), "fdatasync of a queue segment failed; the queue is poisoned.");
            return Err(io_err("fdatasync", &self.active_path())(e));
        }
        let base = self.next_seq;
        let path = self.dir.join(segment_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io_err("create", &path))?;
        self.active = file;
        self.segments.push(Segment { base, path, len: 0 });
        self.dir_dirty = true;
        Ok(())
    }

    /// Undoes a failed append write by cutting the file back; poisons the queue if
    /// even that fails, since the file's tail is then unknown.
    fn undo_write(&mut self, at: u64, e: io::Error) -> QueueError {
        self.cursor = None;
        let path = self.active_path();
        if let Err(cut) = self.active.set_len(at) {
            self.poisoned = true;
            tracing::error!(error = %e, truncate_error = %cut, segment = %path.display(), "A queue write failed and could not be undone; the queue is poisoned.");
        } else {
            tracing::warn!(error = %e, segment = %path.display(), "A queue write failed and was undone.");
        }
        io_err("write", &path)(e)
    }
}

fn remove_segment_file(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

fn lock_dir(dir: &Path) -> Result<Flock<File>, QueueError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io_err("open", &path))?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(lock),
        Err((_, Errno::EWOULDBLOCK)) => Err(QueueError::Locked {
            dir: dir.to_path_buf(),
        }),
        Err((_, errno)) => Err(io_err("lock", &path)(io::Error::from(errno))),
    }
}

/// Creates `dir` (and parents) if missing, and syncs the parent so the new entry
/// survives a crash.
fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)?;
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => fsync_dir(parent),
        _ => Ok(()),
    }
}

pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
