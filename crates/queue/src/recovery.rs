//! Opening a queue: segments are scanned, a torn tail is cut off, damage is
//! quarantined, and the position file is read (or rebuilt) so that nothing synced is
//! lost and nothing acknowledged is delivered again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::errno::Errno;

use super::format::{parse_segment_name, segment_name, Position, HEADER_LEN_U64};
use super::quarantine::Quarantine;
use super::scan::{self, scan_segment, Mode, SegReader, Visit};
use super::{
    create_dir_durably, fsync_dir, io_err, lock_dir, remove_segment_file, Pos, Queue, QueueError,
    QueueOptions, Recovery, Segment, FILE_MODE, POSITION_FILE, POSITION_TMP, QUARANTINE_DIR,
};

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
                    .mode(FILE_MODE)
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
pub(crate) fn load_position(
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
pub(crate) fn write_position(dir: &Path, position: &Position) -> Result<(), QueueError> {
    let tmp = dir.join(POSITION_TMP);
    let path = dir.join(POSITION_FILE);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    f.write_all(&position.encode())
        .map_err(io_err("write", &tmp))?;
    f.sync_all().map_err(io_err("fsync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io_err("rename", &tmp))?;
    fsync_dir(dir).map_err(io_err("fsync directory", dir))
}

pub(crate) fn list_segments(dir: &Path) -> Result<Vec<Segment>, QueueError> {
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
