//! Keeping damaged bytes aside instead of delivering or deleting them.
//!
//! A bad stretch inside a segment is *copied* to `<queue>/quarantine/` with a note
//! beside it and then skipped; the segment itself is left alone and goes away with the
//! other consumed segments. A segment with nothing valid in it is *moved* there whole.
//! Both are best effort: a failed copy is logged and the queue goes on, because the
//! queue never delivers the bytes either way and start-up must not loop on them.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::format::segment_name;
use super::scan::BadRegion;
use super::{fsync_dir, now_ms, FILE_MODE};

/// The quarantine directory of one queue, and what this process put there.
pub(crate) struct Quarantine {
    dir: PathBuf,
    /// Bad stretches already found, by (segment base, start offset) → end offset, so
    /// readers and the acknowledgement walk skip them without scanning again and
    /// nothing is copied or counted twice.
    known: BTreeMap<(u64, u64), u64>,
    /// Bad stretches quarantined since open (recovery included).
    pub corrupt_records: u64,
    /// Bytes quarantined since open, whole segments included.
    pub quarantined_bytes: u64,
    /// Segments moved to quarantine whole since open.
    pub quarantined_segments: u64,
}

impl Quarantine {
    pub(crate) fn new(dir: PathBuf) -> Quarantine {
        Quarantine {
            dir,
            known: BTreeMap::new(),
            corrupt_records: 0,
            quarantined_bytes: 0,
            quarantined_segments: 0,
        }
    }

    /// The end of a known bad stretch starting at `pos` of segment `base`.
    pub(crate) fn known_end(&self, base: u64, pos: u64) -> Option<u64> {
        self.known.get(&(base, pos)).copied()
    }

    /// Forgets the stretch at `pos` (its bytes were truncated away).
    pub(crate) fn forget(&mut self, base: u64, pos: u64) {
        self.known.remove(&(base, pos));
    }

    /// Forgets every stretch in segments below `base` (those segments were deleted).
    pub(crate) fn forget_before(&mut self, base: u64) {
        self.known = self.known.split_off(&(base, 0));
    }

    /// Copies a bad stretch of segment `base` (at `seg_path`) into quarantine, unless
    /// it is already known or an earlier run already copied it. Returns whether it was
    /// new, i.e. counted now.
    pub(crate) fn region(&mut self, seg_path: &Path, base: u64, region: &BadRegion) -> bool {
        if self
            .known
            .insert((base, region.start), region.end)
            .is_some()
        {
            return false;
        }
        let stem = format!("{}.{}-{}", segment_name(base), region.start, region.end);
        let data_path = self.dir.join(format!("{stem}.bad"));
        if data_path.exists() {
            tracing::debug!(path = %data_path.display(), "bad queue bytes were quarantined by an earlier run");
            return false;
        }
        self.corrupt_records += 1;
        self.quarantined_bytes += region.len();
        tracing::warn!(
            segment = %seg_path.display(),
            start = region.start,
            end = region.end,
            reason = region.reason.as_str(),
            quarantine = %data_path.display(),
            "Damaged queue bytes were quarantined; delivery goes on with the next valid record."
        );
        let note = format!(
            "chute queue quarantine note\n\
             segment: {segment}\n\
             byte range: {start}..{end} ({len} bytes)\n\
             reason: {reason}\n\
             sequence number of the first record (if its header was intact): {seq}\n\
             found at (unix ms): {now}\n\
             action: copied here; the queue skipped these bytes and delivered the next valid record\n",
            segment = seg_path.display(),
            start = region.start,
            end = region.end,
            len = region.len(),
            reason = region.reason.as_str(),
            seq = region.seq.map_or_else(|| "-".to_string(), |s| s.to_string()),
            now = now_ms(),
        );
        if let Err(error) = copy_out(seg_path, region.start, region.end, &data_path)
            .and_then(|()| write_note(&self.dir.join(format!("{stem}.txt")), &note))
            .and_then(|()| fsync_dir(&self.dir))
        {
            tracing::error!(%error, quarantine = %data_path.display(), "Could not copy damaged queue bytes to quarantine; they are skipped all the same.");
        }
        true
    }

    /// Moves a whole segment (`len` bytes, nothing valid in it) into quarantine.
    ///
    /// # Errors
    /// The rename failing; the caller cannot go on with a segment it can neither read
    /// nor move out of the way.
    pub(crate) fn whole_segment(
        &mut self,
        path: &Path,
        base: u64,
        len: u64,
        reason: &str,
    ) -> io::Result<()> {
        let name = format!("{}.{}", segment_name(base), now_ms());
        let dest = self.dir.join(&name);
        fs::rename(path, &dest)?;
        self.quarantined_segments += 1;
        self.quarantined_bytes += len;
        tracing::warn!(
            segment = %path.display(),
            bytes = len,
            reason,
            quarantine = %dest.display(),
            "A queue segment without any valid record was moved to quarantine."
        );
        let note = format!(
            "chute queue quarantine note\n\
             segment: {segment}\n\
             bytes: {len}\n\
             reason: {reason}\n\
             found at (unix ms): {now}\n\
             action: the whole segment was moved here; the queue went on with the next segment\n",
            segment = path.display(),
            now = now_ms(),
        );
        if let Err(error) = write_note(&self.dir.join(format!("{name}.txt")), &note) {
            tracing::error!(%error, "Could not write the quarantine note.");
        }
        fsync_dir(&self.dir)?;
        if let Some(parent) = path.parent() {
            fsync_dir(parent)?;
        }
        Ok(())
    }

    /// Moves a damaged position file aside (best effort).
    pub(crate) fn position_file(&mut self, path: &Path) {
        let dest = self.dir.join(format!("position.{}.bad", now_ms()));
        match fs::rename(path, &dest) {
            Ok(()) => {
                tracing::warn!(quarantine = %dest.display(), "The queue position file was damaged and was moved to quarantine; every entry still on disk will be delivered again.")
            }
            Err(error) => {
                tracing::error!(%error, "Could not move the damaged queue position file to quarantine.")
            }
        }
    }
}

/// Streams `start..end` of `src` into `dest` through a temporary file, so a crash
/// never leaves a half copy under the final name.
fn copy_out(src: &Path, start: u64, end: u64, dest: &Path) -> io::Result<()> {
    let input = File::open(src)?;
    let tmp = dest.with_extension("tmp");
    let mut out = create_private(&tmp)?;
    let chunk = usize::try_from(end - start)
        .unwrap_or(usize::MAX)
        .min(1 << 20);
    let mut buf = vec![0u8; chunk];
    let mut off = start;
    while off < end {
        let want = usize::try_from(end - off).unwrap_or(chunk).min(chunk);
        let got = input.read_at(&mut buf[..want], off)?;
        if got == 0 {
            break;
        }
        out.write_all(&buf[..got])?;
        off += got as u64;
    }
    out.sync_all()?;
    fs::rename(&tmp, dest)
}

fn write_note(path: &Path, note: &str) -> io::Result<()> {
    let mut f = create_private(path)?;
    f.write_all(note.as_bytes())?;
    f.sync_all()
}

/// Creates (or truncates) a file only chute's user can read: quarantined bytes are
/// log records.
fn create_private(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}
