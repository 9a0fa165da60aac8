//! A read-only check of a queue directory, for `chute validate --data-dir`.
//!
//! It applies the rules of [`super::Queue::open`] (checking every payload, not only
//! those of the last segment) and reports what recovery would do, without taking the
//! lock or changing any file. Run against a queue in use, it may report the record
//! being written as a torn tail.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::Path;

use nix::errno::Errno;

use super::format::{parse_segment_name, segment_name, Position};
use super::scan::{scan_segment, tail_is_torn, BadRegion, Mode, SegReader, Visit};
use super::{io_err, QueueError, POSITION_FILE, QUARANTINE_DIR};

/// The state of the position file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PositionFile {
    /// No position file: nothing was ever acknowledged (or the queue is new).
    #[default]
    Missing,
    /// Present and intact.
    Valid,
    /// Present but damaged; open would quarantine it and deliver everything again.
    Damaged,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Segment files.
    pub segments: u64,
    /// Bytes in segment files.
    pub bytes: u64,
    /// Valid records (consumed ones included).
    pub records: u64,
    /// Valid records above the acknowledged sequence number.
    pub unacked_records: u64,
    /// Damaged stretches open (or a read) would quarantine.
    pub corrupt_records: u64,
    /// Damaged stretches already copied to quarantine by an earlier run; they stay in
    /// their segment until it is consumed, and are skipped.
    pub already_quarantined: u64,
    /// Bytes in those stretches.
    pub corrupt_bytes: u64,
    /// Bytes at the end of the last segment that open would cut off as a torn write.
    pub torn_tail_bytes: u64,
    /// Segments with nothing valid in them (or that the disk cannot read), which open
    /// would move to quarantine.
    pub unreadable_segments: u64,
    /// The acknowledged sequence number from the position file.
    pub acked_seq: u64,
    pub position_file: PositionFile,
    /// Files already in the quarantine directory (data and notes).
    pub quarantine_files: u64,
}

impl VerifyReport {
    /// No damage at all (a torn tail counts as damage here: worth a look before
    /// starting, though open repairs it).
    pub fn is_clean(&self) -> bool {
        self.corrupt_records == 0
            && self.torn_tail_bytes == 0
            && self.unreadable_segments == 0
            && self.position_file != PositionFile::Damaged
    }
}

/// Checks the queue in `dir` without changing anything. A missing directory is an
/// empty queue.
///
/// # Errors
/// I/O errors other than an unreadable segment (which is reported, not returned).
pub fn verify(dir: &Path) -> Result<VerifyReport, QueueError> {
    let mut report = VerifyReport::default();
    if !dir.exists() {
        return Ok(report);
    }
    let pos_path = dir.join(POSITION_FILE);
    match File::open(&pos_path) {
        Ok(f) => {
            let mut bytes = Vec::new();
            f.take(4096)
                .read_to_end(&mut bytes)
                .map_err(io_err("read", &pos_path))?;
            match Position::decode(&bytes) {
                Some(p) => {
                    report.position_file = PositionFile::Valid;
                    report.acked_seq = p.acked;
                }
                None => report.position_file = PositionFile::Damaged,
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("open", &pos_path)(e)),
    }

    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        if let Some(base) = entry.file_name().to_str().and_then(parse_segment_name) {
            segs.push((base, entry.path()));
        }
    }
    segs.sort();
    let acked = report.acked_seq;
    let mut prev_seq = 0u64;
    let n = segs.len();
    for (i, (base, path)) in segs.into_iter().enumerate() {
        report.segments += 1;
        let is_last = i + 1 == n;
        prev_seq = prev_seq.max(base.saturating_sub(1));
        let qdir = dir.join(QUARANTINE_DIR);
        match verify_segment(&path, base, is_last, acked, prev_seq, &qdir, &mut report) {
            Ok(last) => prev_seq = prev_seq.max(last),
            Err(e) if e.raw_os_error() == Some(Errno::EIO as i32) => {
                report.unreadable_segments += 1;
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        }
    }

    match fs::read_dir(dir.join(QUARANTINE_DIR)) {
        Ok(entries) => report.quarantine_files = entries.count() as u64,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("list", &dir.join(QUARANTINE_DIR))(e)),
    }
    Ok(report)
}

/// Checks one segment; returns the sequence number of its last valid record (or 0).
fn verify_segment(
    path: &Path,
    base: u64,
    is_last: bool,
    acked: u64,
    prev_seq: u64,
    qdir: &Path,
    report: &mut VerifyReport,
) -> io::Result<u64> {
    let known = |region: &BadRegion| {
        let name = format!("{}.{}-{}.bad", segment_name(base), region.start, region.end);
        qdir.join(name).exists()
    };
    let mut reader = SegReader::open(path)?;
    let len = reader.file_len()?;
    report.bytes += len;
    let scan = scan_segment(&mut reader, len, prev_seq, Mode::Verify, |visit| {
        match visit {
            Visit::Record { header, .. } => {
                report.records += 1;
                if header.seq > acked {
                    report.unacked_records += 1;
                }
            }
            Visit::Bad { region, next_seq } => {
                if known(region) {
                    report.already_quarantined += 1;
                } else if next_seq > acked {
                    report.corrupt_records += 1;
                    report.corrupt_bytes += region.len();
                }
            }
        }
        Ok(())
    })?;
    if let Some(tail) = scan.tail {
        if !is_last && scan.records == 0 {
            report.unreadable_segments += 1;
        } else if is_last && tail_is_torn(&mut reader, &tail)? {
            report.torn_tail_bytes += tail.len();
        } else if known(&tail) {
            report.already_quarantined += 1;
        } else {
            report.corrupt_records += 1;
            report.corrupt_bytes += tail.len();
        }
    }
    Ok(scan.last_seq.unwrap_or(0))
}
