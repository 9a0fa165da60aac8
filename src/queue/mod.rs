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
mod scan;
mod verify;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod tests;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

pub use format::MAX_PAYLOAD_BYTES;
pub use verify::{verify, PositionFile, VerifyReport};

use format::{parse_segment_name, segment_name, BadReason, Header, Position, HEADER_LEN_U64};
use quarantine::Quarantine;
use scan::{next_item, scan_segment, BadRegion, Item, Mode, SegReader, Visit};

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

/// Where the consumer's last `read` stopped, so the next one continues without
/// searching: every record before `pos` has a sequence number ≤ `after`.
struct ReadCursor {
    base: u64,
    reader: SegReader,
    pos: u64,
    prev_seq: u64,
    after: u64,
}

/// Where an acknowledgement walk stopped.
struct Walk {
    /// Position of the first unacknowledged record (or the end).
    head: Pos,
    /// (sequence number, append time) of that record, `None` at the end.
    next: Option<(u64, u64)>,
    /// Records passed that were counted as entries.
    passed: u64,
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
    /// Opens the queue in `dir` (creating it if needed) and recovers it: a torn tail
    /// is truncated, damaged stretches are copied to `dir/quarantine/` and skipped, a
    /// segment with nothing valid in it is moved there, segments holding only
    /// acknowledged entries are deleted. Sealed segments are checked header by header
    /// (payload checksums are checked when entries are read); the last segment, where
    /// a crash tears writes, is checked in full.
    ///
    /// # Errors
    /// Only for I/O errors (permissions, a failing disk), invalid options, or
    /// [`QueueError::Locked`] when another queue has the directory open; never
    /// because of what the files contain.
    pub fn open(dir: &Path, opts: QueueOptions) -> Result<(Queue, Recovery), QueueError> {
        if opts.max_bytes <= HEADER_LEN_U64 {
            return Err(QueueError::InvalidOptions(
                "max_bytes must be larger than one record header (32 bytes)",
            ));
        }
        if opts.segment_bytes == 0 {
            return Err(QueueError::InvalidOptions("segment_bytes must be positive"));
        }
        create_dir_durably(dir).map_err(io_err("create directory", dir))?;
        let lock = lock_dir(dir)?;
        let qdir = dir.join(QUARANTINE_DIR);
        create_dir_durably(&qdir).map_err(io_err("create directory", &qdir))?;
        let tmp = dir.join(POSITION_TMP);
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err("remove", &tmp)(e));
            }
            _ => {}
        }

        let mut recovery = Recovery::default();
        let mut quarantine = Quarantine::new(qdir);
        let position = load_position(dir, &mut quarantine, &mut recovery)?;
        let acked = position.acked;

        let mut listed = list_segments(dir)?;
        // A segment whose successor starts at or below acked+1 holds only consumed
        // entries: an ack persisted the position and crashed before deleting it.
        while listed.len() >= 2 && listed[1].base <= acked.saturating_add(1) {
            let seg = listed.remove(0);
            remove_segment_file(&seg.path).map_err(io_err("remove", &seg.path))?;
        }

        let mut st = RecoverState::default();
        let mut kept: Vec<Segment> = Vec::with_capacity(listed.len());
        let mut last_kept = false;
        let n = listed.len();
        for (i, mut seg) in listed.into_iter().enumerate() {
            let is_last = i + 1 == n;
            st.max_base = st.max_base.max(seg.base);
            let fate = recover_segment(
                &mut seg,
                is_last,
                acked,
                &mut st,
                &mut quarantine,
                &mut recovery,
            );
            match fate {
                Ok(true) => {
                    last_kept = is_last;
                    kept.push(seg);
                }
                Ok(false) => {}
                Err(e) if e.raw_os_error() == Some(Errno::EIO as i32) => {
                    // The disk cannot read this file: keep it for a person, go on
                    // without it rather than fail every start.
                    let len = fs::metadata(&seg.path).map(|m| m.len()).unwrap_or(0);
                    quarantine
                        .whole_segment(&seg.path, seg.base, len, "unreadable (EIO)")
                        .map_err(io_err("quarantine", &seg.path))?;
                }
                Err(e) => return Err(io_err("recover", &seg.path)(e)),
            }
        }

        let next_seq = [
            position.next_seq,
            acked.saturating_add(1),
            st.max_seq.saturating_add(1),
            st.max_base,
            1,
        ]
        .into_iter()
        .max()
        .unwrap_or(1);

        // The segment to write to: the last one if it survived, else a new one.
        let last = match kept.pop() {
            Some(seg) if last_kept => seg,
            popped => {
                kept.extend(popped);
                let path = dir.join(segment_name(next_seq));
                File::options()
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(io_err("create", &path))?;
                Segment {
                    base: next_seq,
                    path,
                    len: 0,
                }
            }
        };
        let active = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&last.path)
            .map_err(io_err("open", &last.path))?;
        // Data that survived a process crash in the page cache, and everything recovery
        // changed, is made durable before anything is delivered or appended.
        active
            .sync_data()
            .map_err(io_err("fdatasync", &last.path))?;
        fsync_dir(dir).map_err(io_err("fsync directory", dir))?;
        let end = Pos {
            base: last.base,
            offset: last.len,
        };
        kept.push(last);

        let (head, head_entry) = match st.head {
            Some((base, offset, seq, ms)) => (Pos { base, offset }, Some((seq, ms))),
            None => (end, None),
        };
        if next_seq != position.next_seq || recovery.position_reset {
            write_position(dir, &Position { acked, next_seq })?;
        }

        recovery.corrupt_records = quarantine.corrupt_records;
        recovery.quarantined_bytes = quarantine.quarantined_bytes;
        recovery.quarantined_segments = quarantine.quarantined_segments;

        let mut queue = Queue {
            dir: dir.to_path_buf(),
            opts,
            _lock: lock,
            segments: kept,
            active,
            next_seq,
            acked,
            synced: end,
            synced_seq: next_seq - 1,
            dir_dirty: false,
            head,
            head_entry,
            unacked_bytes: 0,
            unacked_entries: st.entries,
            cursor: None,
            quarantine,
            poisoned: false,
            scratch: Vec::new(),
        };
        queue.unacked_bytes = queue.bytes_from(head);
        queue.delete_before(head.base);
        if recovery != Recovery::default() {
            tracing::warn!(dir = %dir.display(), ?recovery, "The queue was repaired while opening.");
        }
        Ok((queue, recovery))
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
        let record_len = HEADER_LEN_U64 + payload.len() as u64;
        let len = match u32::try_from(payload.len()) {
            Ok(len) if len <= MAX_PAYLOAD_BYTES && record_len <= self.opts.max_bytes => len,
            _ => {
                return Err(QueueError::TooLarge {
                    bytes: payload.len() as u64,
                    limit: u64::from(MAX_PAYLOAD_BYTES).min(self.opts.max_bytes - HEADER_LEN_U64),
                })
            }
        };
        if self.unacked_bytes + record_len > self.opts.max_bytes {
            return Err(QueueError::Full {
                unacked_bytes: self.unacked_bytes,
                entry_bytes: record_len,
                max_bytes: self.opts.max_bytes,
            });
        }
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

    /// Returns up to `max` synced entries with a sequence number above `after` (and
    /// above the acknowledged one), in order, stopping before `max_bytes` of payload
    /// would be passed (but always returning at least one entry if there is one).
    /// Reading on from where the previous call stopped costs no search.
    ///
    /// A damaged entry met here is quarantined and skipped, like at open.
    ///
    /// # Errors
    /// Only I/O errors reading the segment files; the next call starts over cleanly.
    pub fn read(
        &mut self,
        after: u64,
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, QueueError> {
        let after = after.max(self.acked);
        let mut out = Vec::new();
        if max == 0 {
            return Ok(out);
        }
        let mut cur = match self.cursor.take() {
            Some(c) if c.after <= after && self.seg_idx(c.base).is_some() => c,
            _ => self.locate(after)?,
        };
        cur.after = after;
        let mut damaged = false;
        self.read_into(&mut cur, max, max_bytes, &mut out, &mut damaged)?;
        self.cursor = Some(cur);
        if damaged {
            // Damage right at the head would otherwise hold the oldest-entry age and
            // counts until the next acknowledgement.
            let walk = self.walk(self.acked)?;
            self.apply_walk(walk);
        }
        Ok(out)
    }

    /// Marks every entry up to `upto` consumed: persists the position (temporary
    /// file, fsync, rename, directory fsync), then deletes segments that hold only
    /// consumed entries. A crash anywhere in between leaves either the old or the new
    /// position, and segments that [`Queue::open`] deletes. Acknowledging a number at
    /// or below the current one does nothing.
    ///
    /// # Errors
    /// [`QueueError::AckBeyondSynced`] for numbers never synced; [`QueueError::Io`] if
    /// the position cannot be persisted (then nothing changed). A segment that cannot
    /// be deleted is logged and tried again at the next acknowledgement.
    pub fn ack(&mut self, upto: u64) -> Result<(), QueueError> {
        if upto <= self.acked {
            return Ok(());
        }
        if upto > self.synced_seq {
            return Err(QueueError::AckBeyondSynced {
                upto,
                synced: self.synced_seq,
            });
        }
        let walk = self.walk(upto)?;
        write_position(
            &self.dir,
            &Position {
                acked: upto,
                next_seq: self.next_seq,
            },
        )?;
        self.acked = upto;
        self.apply_walk(walk);
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

    /// A cursor at the first record that may have a sequence number above `after`.
    fn locate(&self, after: u64) -> Result<ReadCursor, QueueError> {
        let target = after.saturating_add(1);
        let idx = self
            .segments
            .partition_point(|s| s.base <= target)
            .saturating_sub(1);
        let seg_base = self.segments.get(idx).map_or(self.head.base, |s| s.base);
        // Nothing before the head is unacknowledged, and every record from the head on
        // is above the acknowledged number.
        let (base, pos, prev_seq) = if self.head.base >= seg_base {
            (self.head.base, self.head.offset, self.acked)
        } else {
            (seg_base, 0, seg_base.saturating_sub(1))
        };
        let path = self.segment_path(base);
        let reader = SegReader::open(&path).map_err(io_err("open", &path))?;
        Ok(ReadCursor {
            base,
            reader,
            pos,
            prev_seq,
            after,
        })
    }

    fn segment_path(&self, base: u64) -> PathBuf {
        self.dir.join(segment_name(base))
    }

    fn read_into(
        &mut self,
        cur: &mut ReadCursor,
        max: usize,
        max_bytes: usize,
        out: &mut Vec<Entry>,
        damaged: &mut bool,
    ) -> Result<(), QueueError> {
        let mut bytes = 0usize;
        while out.len() < max {
            let Some(idx) = self.seg_idx(cur.base) else {
                break;
            };
            if let Some(end) = self.quarantine.known_end(cur.base, cur.pos) {
                cur.pos = end;
                continue;
            }
            let bound = self.read_bound(idx);
            let path = self.segment_path(cur.base);
            let item = next_item(&mut cur.reader, cur.pos, bound, cur.prev_seq, Mode::Headers)
                .map_err(io_err("read", &path))?;
            match item {
                Item::End => {
                    // Go on into the next segment only if this one is fully readable.
                    let next = self.segments.get(idx + 1).map(|s| s.base);
                    match next {
                        Some(next) if cur.base < self.synced.base => {
                            let next_path = self.segment_path(next);
                            cur.reader =
                                SegReader::open(&next_path).map_err(io_err("open", &next_path))?;
                            cur.base = next;
                            cur.pos = 0;
                            cur.prev_seq = cur.prev_seq.max(next.saturating_sub(1));
                        }
                        _ => break,
                    }
                }
                Item::Bad(region) => {
                    *damaged |= self.on_bad(idx, &region);
                    cur.pos = region.end;
                }
                Item::Record {
                    header, start, end, ..
                } => {
                    if header.seq <= cur.after {
                        cur.prev_seq = header.seq;
                        cur.pos = end;
                        continue;
                    }
                    let len = header.len as usize;
                    if !out.is_empty() && bytes.saturating_add(len) > max_bytes {
                        break;
                    }
                    let loaded = next_item(&mut cur.reader, start, bound, cur.prev_seq, Mode::Load)
                        .map_err(io_err("read", &path))?;
                    match loaded {
                        Item::Record {
                            header,
                            end,
                            payload: Some(payload),
                            ..
                        } => {
                            bytes = bytes.saturating_add(payload.len());
                            cur.prev_seq = header.seq;
                            cur.pos = end;
                            cur.after = header.seq;
                            out.push(Entry {
                                seq: header.seq,
                                appended_at: UNIX_EPOCH + Duration::from_millis(header.appended_ms),
                                payload,
                            });
                            if bytes >= max_bytes {
                                break;
                            }
                        }
                        Item::Bad(region) => {
                            *damaged |= self.on_bad(idx, &region);
                            cur.pos = region.end;
                        }
                        // The header was valid a moment ago; stop and let the next
                        // call start over rather than guess.
                        _ => break,
                    }
                }
            }
        }
        Ok(())
    }

    /// Quarantines a bad stretch met after open. An intact-header record with a bad
    /// payload was counted as an entry, so it stops being one. Returns whether it was
    /// new.
    fn on_bad(&mut self, idx: usize, region: &BadRegion) -> bool {
        let Some(seg) = self.segments.get(idx) else {
            return false;
        };
        let new = self.quarantine.region(&seg.path, seg.base, region);
        if new
            && region.reason == BadReason::PayloadCrc
            && region.seq.is_some_and(|s| s > self.acked)
        {
            self.unacked_entries = self.unacked_entries.saturating_sub(1);
        }
        new
    }

    /// Walks from the head past every record ≤ `upto` and every bad stretch (those are
    /// quarantined on the way), stopping at the first record above `upto` or the end.
    fn walk(&mut self, upto: u64) -> Result<Walk, QueueError> {
        let mut idx = self.seg_idx(self.head.base).unwrap_or(0);
        let mut base = self.segments.get(idx).map_or(self.head.base, |s| s.base);
        let mut pos = if base == self.head.base {
            self.head.offset
        } else {
            0
        };
        let mut prev = self.acked;
        let mut passed = 0;
        let mut path = self.segment_path(base);
        let mut reader = SegReader::open(&path).map_err(io_err("open", &path))?;
        loop {
            if let Some(end) = self.quarantine.known_end(base, pos) {
                pos = end;
                continue;
            }
            let bound = self.segments.get(idx).map_or(0, |s| s.len);
            let item = next_item(&mut reader, pos, bound, prev, Mode::Headers)
                .map_err(io_err("read", &path))?;
            match item {
                Item::End => match self.segments.get(idx + 1) {
                    Some(next) => {
                        idx += 1;
                        base = next.base;
                        pos = 0;
                        prev = prev.max(base.saturating_sub(1));
                        path = self.segment_path(base);
                        reader = SegReader::open(&path).map_err(io_err("open", &path))?;
                    }
                    None => {
                        return Ok(Walk {
                            head: Pos { base, offset: pos },
                            next: None,
                            passed,
                        })
                    }
                },
                Item::Bad(region) => {
                    self.on_bad(idx, &region);
                    pos = region.end;
                }
                Item::Record {
                    header, start, end, ..
                } => {
                    if header.seq > upto {
                        return Ok(Walk {
                            head: Pos {
                                base,
                                offset: start,
                            },
                            next: Some((header.seq, header.appended_ms)),
                            passed,
                        });
                    }
                    passed += 1;
                    prev = header.seq;
                    pos = end;
                }
            }
        }
    }

    fn apply_walk(&mut self, walk: Walk) {
        self.head = walk.head;
        self.head_entry = walk.next;
        self.unacked_entries = match walk.next {
            Some(_) => self.unacked_entries.saturating_sub(walk.passed),
            None => 0,
        };
        self.unacked_bytes = self.bytes_from(self.head);
        self.delete_before(self.head.base);
    }

    /// Deletes the segments before segment `base`: they hold only consumed entries
    /// and quarantined bytes. No directory fsync: a deletion lost in a crash is
    /// repeated by the next open, which finds the segment below the position.
    fn delete_before(&mut self, base: u64) {
        let mut deleted = 0;
        for seg in self.segments.iter().take_while(|s| s.base < base) {
            if let Err(error) = remove_segment_file(&seg.path) {
                tracing::warn!(%error, "A consumed queue segment could not be deleted; trying again at the next acknowledgement.");
                break;
            }
            deleted += 1;
        }
        if deleted == 0 {
            return;
        }
        self.segments.drain(..deleted);
        if let Some(first) = self.segments.first() {
            self.quarantine.forget_before(first.base);
        }
        if self
            .cursor
            .as_ref()
            .is_some_and(|c| self.seg_idx(c.base).is_none())
        {
            self.cursor = None;
        }
    }
}

/// What recovery has learnt so far, across segments.
#[derive(Default)]
struct RecoverState {
    /// Highest sequence number seen (records, and intact headers of torn ones).
    max_seq: u64,
    /// Highest segment base seen.
    max_base: u64,
    /// Sequence number of the last valid record, for the order check.
    prev_seq: u64,
    /// The first unacknowledged record: (segment base, offset, seq, append ms).
    head: Option<(u64, u64, u64, u64)>,
    /// Unacknowledged valid records.
    entries: u64,
}

/// Recovers one segment; `Ok(false)` when it was deleted or moved to quarantine.
fn recover_segment(
    seg: &mut Segment,
    is_last: bool,
    acked: u64,
    st: &mut RecoverState,
    quarantine: &mut Quarantine,
    recovery: &mut Recovery,
) -> io::Result<bool> {
    let mut reader = SegReader::open(&seg.path)?;
    let len = reader.file_len()?;
    seg.len = len;
    if len == 0 {
        if is_last {
            return Ok(true);
        }
        remove_segment_file(&seg.path)?;
        return Ok(false);
    }
    st.prev_seq = st.prev_seq.max(seg.base.saturating_sub(1));
    let mode = if is_last { Mode::Verify } else { Mode::Headers };
    let (base, path) = (seg.base, seg.path.clone());
    let scan = scan_segment(&mut reader, len, st.prev_seq, mode, |visit| {
        match visit {
            Visit::Record { header, start } => {
                if header.seq > acked {
                    st.entries += 1;
                    if st.head.is_none() {
                        st.head = Some((base, start, header.seq, header.appended_ms));
                    }
                }
            }
            // Damage followed by consumed records was consumed too: nothing to keep.
            Visit::Bad { region, next_seq } => {
                if next_seq > acked {
                    quarantine.region(&path, base, region);
                }
            }
        }
        Ok(())
    })?;
    if let Some(last) = scan.last_seq {
        st.max_seq = st.max_seq.max(last);
        st.prev_seq = st.prev_seq.max(last);
    }
    let Some(tail) = scan.tail else {
        return Ok(true);
    };
    // A number whose header reached the disk is never handed out again.
    st.max_seq = st.max_seq.max(tail.max_seq.unwrap_or(0));
    if !is_last {
        if scan.records == 0 {
            quarantine.whole_segment(&seg.path, base, len, tail.reason.as_str())?;
            return Ok(false);
        }
        // A sealed segment was synced before its successor existed: bad bytes at its
        // end are damage, not a torn write.
        quarantine.region(&seg.path, base, &tail);
        return Ok(true);
    }
    if scan::tail_is_torn(&mut reader, &tail)? {
        recovery.torn_bytes_truncated += tail.len();
        tracing::warn!(segment = %seg.path.display(), offset = tail.start, bytes = tail.len(), "Cutting off a torn write at the end of the queue.");
    } else {
        quarantine.region(&seg.path, base, &tail);
        // Its bytes are cut off next; new records will be written at its offset.
        quarantine.forget(base, tail.start);
    }
    let file = OpenOptions::new().write(true).open(&seg.path)?;
    file.set_len(tail.start)?;
    file.sync_all()?;
    seg.len = tail.start;
    Ok(true)
}

/// Reads the position file; a damaged one is moved to quarantine and replaced by the
/// start of the queue (redelivery rather than loss).
fn load_position(
    dir: &Path,
    quarantine: &mut Quarantine,
    recovery: &mut Recovery,
) -> Result<Position, QueueError> {
    let path = dir.join(POSITION_FILE);
    let mut bytes = Vec::new();
    match File::open(&path) {
        Ok(f) => {
            f.take(4096)
                .read_to_end(&mut bytes)
                .map_err(io_err("read", &path))?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Position::default()),
        Err(e) => return Err(io_err("open", &path)(e)),
    }
    match Position::decode(&bytes) {
        Some(p) => Ok(p),
        None => {
            recovery.position_reset = true;
            quarantine.position_file(&path);
            Ok(Position::default())
        }
    }
}

/// Persists the position: temporary file, fsync, rename over the old one, directory
/// fsync. A crash leaves the old or the new file, never a mix.
fn write_position(dir: &Path, position: &Position) -> Result<(), QueueError> {
    let tmp = dir.join(POSITION_TMP);
    let path = dir.join(POSITION_FILE);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.write_all(&position.encode())
        .map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    fsync_dir(dir).map_err(io_err("fsync directory", dir))
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, QueueError> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(base) = name.to_str().and_then(parse_segment_name) else {
            continue;
        };
        segs.push(Segment {
            base,
            path: entry.path(),
            len: 0,
        });
    }
    segs.sort_by_key(|s| s.base);
    Ok(segs)
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
    fs::create_dir_all(dir)?;
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
