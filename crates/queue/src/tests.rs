//! Unit tests of the queue, and damage done on purpose to real files.

use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::format::HEADER_LEN_U64;
use super::*;

fn opts(max_bytes: u64, segment_bytes: u64) -> QueueOptions {
    QueueOptions {
        max_bytes,
        segment_bytes,
    }
}

fn open(dir: &Path, o: QueueOptions) -> (Queue, Recovery) {
    match Queue::open(dir, o) {
        Ok(q) => q,
        Err(e) => panic!("open failed: {e}"),
    }
}

/// A payload that says which entry it is.
fn payload(i: u64, len: usize) -> Vec<u8> {
    let mut p: Vec<u8> = (0..len)
        .map(|j| (j as u64 ^ i.wrapping_mul(31)) as u8)
        .collect();
    let tag = i.to_le_bytes();
    for (d, s) in p.iter_mut().zip(tag.iter()) {
        *d = *s;
    }
    p
}

fn record_len(payload_len: usize) -> u64 {
    HEADER_LEN_U64 + payload_len as u64
}

/// Appends entries `from..=to` with `len`-byte payloads and syncs.
fn fill(q: &mut Queue, from: u64, to: u64, len: usize) {
    for i in from..=to {
        assert_eq!(q.append(&payload(i, len)).unwrap(), i);
    }
    q.sync().unwrap();
}

/// Every readable entry after `after`, in read calls of 3.
fn read_all(q: &mut Queue, mut after: u64) -> Vec<Entry> {
    let mut all = Vec::new();
    loop {
        let got = q.read(after, 3, usize::MAX).unwrap();
        let Some(last) = got.last() else {
            return all;
        };
        after = last.seq;
        all.extend(got);
    }
}

fn seqs(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.seq).collect()
}

fn check_payloads(entries: &[Entry], len: usize) {
    for e in entries {
        assert_eq!(e.payload, payload(e.seq, len), "payload of entry {}", e.seq);
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

fn quarantine_files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir.join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Overwrites bytes of a file in place.
fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn flip_bit(path: &Path, offset: u64, bit: u8) {
    let mut b = [0u8];
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 1 << bit;
    f.write_all_at(&b, offset).unwrap();
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).unwrap().len()
}

#[test]
fn appended_entries_are_readable_after_sync_and_gone_after_ack() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec, Recovery::default());
    for i in 1..=3 {
        assert_eq!(q.append(&payload(i, 100)).unwrap(), i);
    }
    assert!(
        q.read(0, 10, usize::MAX).unwrap().is_empty(),
        "unsynced entries must not be delivered"
    );
    q.sync().unwrap();
    let got = q.read(0, 10, usize::MAX).unwrap();
    assert_eq!(seqs(&got), [1, 2, 3]);
    check_payloads(&got, 100);
    q.ack(2).unwrap();
    assert_eq!(seqs(&q.read(0, 10, usize::MAX).unwrap()), [3]);
    assert_eq!(seqs(&q.read(1, 10, usize::MAX).unwrap()), [3]);
    assert!(q.read(3, 10, usize::MAX).unwrap().is_empty());
    let s = q.stats();
    assert_eq!(s.unacked_entries, 1);
    assert_eq!(s.unacked_bytes, record_len(100));
    assert_eq!(s.first_unacked_seq, Some(3));
    assert_eq!(s.acked_seq, 2);
    assert_eq!(s.synced_seq, 3);
    assert_eq!(s.next_seq, 4);
}

#[test]
fn reads_respect_count_and_byte_limits_but_always_return_one_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), QueueOptions::default());
    fill(&mut q, 1, 5, 1000);
    assert_eq!(seqs(&q.read(0, 2, usize::MAX).unwrap()), [1, 2]);
    assert_eq!(seqs(&q.read(2, 10, 2500).unwrap()), [3, 4]);
    assert_eq!(seqs(&q.read(4, 10, 10).unwrap()), [5]);
    // Going back (a consumer retrying after a failed commit) finds them again.
    assert_eq!(seqs(&q.read(1, 10, usize::MAX).unwrap()), [2, 3, 4, 5]);
    assert!(q.read(0, 0, usize::MAX).unwrap().is_empty());
}

#[test]
fn sequence_numbers_survive_a_restart_after_everything_was_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 300);
    {
        let (mut q, _) = open(dir.path(), o);
        fill(&mut q, 1, 9, 100);
        q.ack(9).unwrap();
        assert_eq!(q.stats().segments, 1, "consumed segments are deleted");
        assert_eq!(q.stats().unacked_bytes, 0);
    }
    {
        let (mut q, rec) = open(dir.path(), o);
        assert_eq!(rec, Recovery::default());
        assert!(
            read_all(&mut q, 0).is_empty(),
            "acknowledged entries came back"
        );
        assert_eq!(q.append(b"x").unwrap(), 10);
        q.sync().unwrap();
        q.ack(10).unwrap();
        // Roll over so that the only segment left starts after every entry.
        fill(&mut q, 11, 14, 100);
        q.ack(14).unwrap();
    }
    // Even without the position file the numbers keep growing (the segment names
    // carry them); what is still on disk is delivered again rather than lost.
    fs::remove_file(dir.path().join("position")).unwrap();
    let (mut q, _) = open(dir.path(), o);
    let again = read_all(&mut q, 0);
    assert!(seqs(&again).iter().all(|&s| s > 10 && s <= 14));
    assert_eq!(q.append(b"y").unwrap(), 15);
}

#[test]
fn append_all_writes_every_entry_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(100);
    let (mut q, _) = open(dir.path(), opts(4 * rl, 1 << 20));
    fill(&mut q, 1, 2, 100);
    let before = q.stats();
    // Three more do not fit, though the first two would: none is written.
    let three: Vec<_> = (3..=5).map(|i| payload(i, 100)).collect();
    assert!(matches!(q.append_all(&three), Err(QueueError::Full { .. })));
    assert_eq!(q.stats(), before);
    // One that can never fit refuses the group as too large.
    let with_huge = vec![payload(3, 100), vec![0u8; 4 * rl as usize]];
    assert!(matches!(
        q.append_all(&with_huge),
        Err(QueueError::TooLarge { .. })
    ));
    assert_eq!(q.stats(), before);
    assert_eq!(q.append_all(&three[..2]).unwrap(), 4);
    q.sync().unwrap();
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [1, 2, 3, 4]);
    check_payloads(&got, 100);
}

#[test]
fn a_full_queue_refuses_appends_and_stays_intact() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(100);
    let (mut q, _) = open(dir.path(), opts(3 * rl, 1 << 20));
    fill(&mut q, 1, 3, 100);
    let before = q.stats();
    match q.append(&payload(4, 100)) {
        Err(e @ QueueError::Full { .. }) => {
            assert_eq!(e.reason(), "full");
            assert!(e.is_retriable());
        }
        other => panic!("expected Full, got {other:?}"),
    }
    assert_eq!(q.stats(), before);
    // An entry that can never fit is told apart from a full queue.
    match q.append(&vec![0u8; 3 * rl as usize]) {
        Err(e @ QueueError::TooLarge { .. }) => assert!(!e.is_retriable()),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [1, 2, 3]);
    check_payloads(&got, 100);
    q.ack(1).unwrap();
    assert_eq!(q.append(&payload(4, 100)).unwrap(), 4);
    q.sync().unwrap();
    assert_eq!(seqs(&read_all(&mut q, 1)), [2, 3, 4]);
}

#[test]
fn segments_roll_over_and_consumed_ones_are_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(50);
    let (mut q, _) = open(dir.path(), opts(1 << 20, 2 * rl));
    fill(&mut q, 1, 10, 50);
    assert_eq!(q.stats().segments, 5);
    assert_eq!(segment_files(dir.path()).len(), 5);
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), (1..=10).collect::<Vec<_>>());
    check_payloads(&got, 50);

    q.ack(4).unwrap();
    let names: Vec<_> = segment_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00000000000000000005.seg",
            "00000000000000000007.seg",
            "00000000000000000009.seg"
        ]
    );
    assert_eq!(q.stats().unacked_bytes, 6 * rl);
    // Acknowledging into the middle of a segment keeps it.
    q.ack(5).unwrap();
    assert_eq!(q.stats().segments, 3);
    assert_eq!(q.stats().unacked_bytes, 5 * rl);
    assert_eq!(seqs(&read_all(&mut q, 0)), (6..=10).collect::<Vec<_>>());
    // An entry larger than a segment gets one of its own.
    assert_eq!(q.append(&payload(11, 500)).unwrap(), 11);
    q.sync().unwrap();
    assert_eq!(
        q.read(10, 1, usize::MAX).unwrap()[0].payload,
        payload(11, 500)
    );
}

#[test]
fn a_segment_left_behind_by_a_crash_during_ack_is_deleted_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(50);
    let o = opts(1 << 20, 2 * rl);
    {
        let (mut q, _) = open(dir.path(), o);
        fill(&mut q, 1, 6, 50);
    }
    // The state an ack leaves when it dies after persisting the position and before
    // deleting: acknowledged up to 4, segments 1 and 3 still there.
    super::recovery::write_position(
        dir.path(),
        &super::format::Position {
            acked: 4,
            next_seq: 7,
        },
    )
    .unwrap();
    let (mut q, rec) = open(dir.path(), o);
    assert_eq!(rec, Recovery::default());
    assert_eq!(segment_files(dir.path()).len(), 1);
    assert_eq!(seqs(&read_all(&mut q, 0)), [5, 6]);
}

#[test]
fn stats_count_unacknowledged_entries_and_keep_their_age_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 1 << 20);
    let first_at;
    {
        let (mut q, _) = open(dir.path(), o);
        let s = q.stats();
        assert_eq!((s.unacked_entries, s.unacked_bytes), (0, 0));
        assert_eq!(s.oldest_unacked_append, None);
        fill(&mut q, 1, 4, 10);
        q.append(b"unsynced").unwrap();
        let s = q.stats();
        assert_eq!(s.unacked_entries, 5);
        assert_eq!(s.unacked_bytes, 4 * record_len(10) + record_len(8));
        assert_eq!(s.synced_seq, 4);
        assert_eq!(s.first_unacked_seq, Some(1));
        first_at = q.read(0, 1, usize::MAX).unwrap()[0].appended_at;
        assert_eq!(s.oldest_unacked_append, Some(first_at));
        q.sync().unwrap();
        q.ack(1).unwrap();
    }
    let (q, _) = open(dir.path(), o);
    let s = q.stats();
    assert_eq!(s.unacked_entries, 4);
    assert_eq!(s.first_unacked_seq, Some(2));
    assert!(s.oldest_unacked_append >= Some(first_at));
    assert_eq!(s.acked_seq, 1);
    assert_eq!(s.next_seq, 6);
    assert!(!s.poisoned);
}

#[test]
fn a_second_queue_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_q, _) = open(dir.path(), QueueOptions::default());
    match Queue::open(dir.path(), QueueOptions::default()) {
        Err(e @ QueueError::Locked { .. }) => assert_eq!(e.reason(), "locked"),
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, got a queue"),
    }
}

#[test]
fn acknowledging_unsynced_entries_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (mut q, _) = open(dir.path(), QueueOptions::default());
    fill(&mut q, 1, 2, 10);
    q.append(b"3").unwrap();
    assert!(matches!(
        q.ack(3),
        Err(QueueError::AckBeyondSynced { upto: 3, synced: 2 })
    ));
    q.ack(2).unwrap();
    q.ack(1).unwrap(); // going back does nothing
    assert_eq!(q.stats().acked_seq, 2);
}

#[test]
fn invalid_options_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Queue::open(dir.path(), opts(10, 100)),
        Err(QueueError::InvalidOptions(_))
    ));
    assert!(matches!(
        Queue::open(dir.path(), opts(1000, 0)),
        Err(QueueError::InvalidOptions(_))
    ));
}

#[test]
fn after_a_restart_delivery_resumes_after_the_last_acknowledgement() {
    let dir = tempfile::tempdir().unwrap();
    let o = opts(1 << 20, 400);
    {
        let (mut q, _) = open(dir.path(), o);
        fill(&mut q, 1, 10, 60);
        assert_eq!(read_all(&mut q, 0).len(), 10);
        q.ack(6).unwrap();
        // Read further without acknowledging, then "crash".
    }
    let (mut q, rec) = open(dir.path(), o);
    assert_eq!(rec, Recovery::default());
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [7, 8, 9, 10]);
    check_payloads(&got, 60);
}

// ---- damage on purpose ----------------------------------------------------------

/// One segment holding entries 1..=5 of 100-byte payloads; returns its path.
fn five_in_one_segment(dir: &Path) -> PathBuf {
    let (mut q, _) = open(dir, opts(1 << 20, 1 << 20));
    fill(&mut q, 1, 5, 100);
    drop(q);
    segment_files(dir).remove(0)
}

fn start_of(n: u64) -> u64 {
    (n - 1) * record_len(100)
}

#[test]
fn a_torn_tail_is_truncated_and_counted_and_earlier_records_survive() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    let full = file_len(&seg);
    // Cut the last record in the middle of its payload.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(full - 30)
        .unwrap();
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec.torn_bytes_truncated, record_len(100) - 30);
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!(file_len(&seg), start_of(5));
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [1, 2, 3, 4]);
    check_payloads(&got, 100);
    // The torn record's header reached the disk, so its number is not reused.
    assert_eq!(q.append(b"after").unwrap(), 6);
    assert!(quarantine_files(dir.path()).is_empty());
}

#[test]
fn a_torn_header_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(start_of(5) + 20)
        .unwrap();
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec.torn_bytes_truncated, 20);
    assert_eq!(seqs(&read_all(&mut q, 0)), [1, 2, 3, 4]);
    assert_eq!(q.append(b"after").unwrap(), 5);
}

#[test]
fn zeros_at_the_end_are_a_torn_write_not_damage() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    let full = file_len(&seg);
    poke(&seg, full, &[0u8; 4096]);
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec.torn_bytes_truncated, 4096);
    assert_eq!(rec.corrupt_records, 0);
    assert_eq!(seqs(&read_all(&mut q, 0)), [1, 2, 3, 4, 5]);
}

#[test]
fn a_flipped_payload_bit_quarantines_that_record_and_delivers_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    flip_bit(&seg, start_of(3) + HEADER_LEN_U64 + 50, 3);
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec.corrupt_records, 1);
    assert_eq!(rec.quarantined_bytes, record_len(100));
    assert_eq!(rec.torn_bytes_truncated, 0);
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [1, 2, 4, 5]);
    check_payloads(&got, 100);
    assert_eq!(q.stats().unacked_entries, 4);
    let files = quarantine_files(dir.path());
    assert_eq!(
        files,
        [
            format!(
                "00000000000000000001.seg.{}-{}.bad",
                start_of(3),
                start_of(4)
            ),
            format!(
                "00000000000000000001.seg.{}-{}.txt",
                start_of(3),
                start_of(4)
            ),
        ]
    );
    let kept = fs::read(dir.path().join("quarantine").join(&files[0])).unwrap();
    assert_eq!(kept.len() as u64, record_len(100));
    let note = fs::read_to_string(dir.path().join("quarantine").join(&files[1])).unwrap();
    assert!(note.contains("payload_crc"), "{note}");
    // Acknowledging everything delivered passes the quarantined record too.
    q.ack(5).unwrap();
    assert_eq!(q.stats().unacked_entries, 0);
    assert_eq!(q.stats().unacked_bytes, 0);
    drop(q);
    // Opening again neither counts nor copies it twice.
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec, Recovery::default());
    assert!(read_all(&mut q, 0).is_empty());
}

#[test]
fn a_flipped_header_checksum_is_found_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    flip_bit(&seg, start_of(2) + 25, 0); // inside the stored payload CRC
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec.corrupt_records, 1);
    assert_eq!(seqs(&read_all(&mut q, 0)), [1, 3, 4, 5]);
}

#[test]
fn a_zeroed_length_prefix_is_detected_and_the_records_after_it_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    poke(&seg, start_of(2) + 4, &[0, 0, 0, 0]);
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec.corrupt_records, 1);
    assert_eq!(rec.quarantined_bytes, record_len(100));
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [1, 3, 4, 5]);
    check_payloads(&got, 100);
    let note = quarantine_files(dir.path())
        .into_iter()
        .find(|f| f.ends_with(".txt"))
        .unwrap();
    let note = fs::read_to_string(dir.path().join("quarantine").join(note)).unwrap();
    assert!(note.contains("header_crc"), "{note}");
}

#[test]
fn garbage_appended_is_quarantined_cut_off_and_new_appends_work() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    let full = file_len(&seg);
    let garbage: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 13) as u8).collect();
    poke(&seg, full, &garbage);
    let o = QueueOptions::default();
    {
        let (mut q, rec) = open(dir.path(), o);
        assert_eq!(rec.corrupt_records, 1);
        assert_eq!(rec.quarantined_bytes, 1000);
        assert_eq!(rec.torn_bytes_truncated, 0);
        assert_eq!(file_len(&seg), full);
        assert_eq!(seqs(&read_all(&mut q, 0)), [1, 2, 3, 4, 5]);
        // The next record lands where the garbage was and must be readable.
        assert_eq!(q.append(&payload(6, 100)).unwrap(), 6);
        q.sync().unwrap();
        let got = read_all(&mut q, 5);
        assert_eq!(seqs(&got), [6]);
        check_payloads(&got, 100);
    }
    let (mut q, rec) = open(dir.path(), o);
    assert_eq!(rec, Recovery::default());
    assert_eq!(seqs(&read_all(&mut q, 0)), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn a_segment_of_garbage_is_moved_to_quarantine_whole() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(100);
    let o = opts(1 << 20, 2 * rl);
    {
        let (mut q, _) = open(dir.path(), o);
        fill(&mut q, 1, 6, 100);
    }
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 3);
    let garbage: Vec<u8> = (0..2 * rl).map(|i| (i * 131 + 7) as u8).collect();
    fs::write(&segs[1], &garbage).unwrap();
    let (mut q, rec) = open(dir.path(), o);
    assert_eq!(rec.quarantined_segments, 1);
    assert_eq!(rec.quarantined_bytes, 2 * rl);
    assert!(!segs[1].exists());
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [1, 2, 5, 6]);
    check_payloads(&got, 100);
    assert_eq!(q.stats().unacked_entries, 4);
    assert!(quarantine_files(dir.path())
        .iter()
        .any(|f| f.starts_with("00000000000000000003.seg.") && !f.ends_with(".txt")));
    assert_eq!(q.append(b"more").unwrap(), 7);
}

#[test]
fn payload_damage_in_a_sealed_segment_is_found_when_read() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(100);
    let o = opts(1 << 20, 2 * rl);
    {
        let (mut q, _) = open(dir.path(), o);
        fill(&mut q, 1, 6, 100);
    }
    let segs = segment_files(dir.path());
    // Entry 2 is the second record of the first (sealed) segment.
    flip_bit(&segs[0], rl + HEADER_LEN_U64 + 10, 5);
    let (mut q, rec) = open(dir.path(), o);
    assert_eq!(
        rec,
        Recovery::default(),
        "sealed segments are checked by header"
    );
    assert_eq!(q.stats().unacked_entries, 6);
    let got = read_all(&mut q, 0);
    assert_eq!(seqs(&got), [1, 3, 4, 5, 6]);
    check_payloads(&got, 100);
    let s = q.stats();
    assert_eq!(s.corrupt_records, 1);
    assert_eq!(s.unacked_entries, 5);
    q.ack(6).unwrap();
    assert_eq!(q.stats().unacked_entries, 0);
    assert_eq!(q.stats().segments, 1);
}

#[test]
fn damage_right_after_the_last_acknowledged_entry_does_not_hold_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(100);
    let o = opts(1 << 20, 2 * rl);
    {
        let (mut q, _) = open(dir.path(), o);
        fill(&mut q, 1, 4, 100);
    }
    let segs = segment_files(dir.path());
    flip_bit(&segs[0], rl + HEADER_LEN_U64 + 1, 1); // entry 2, sealed segment
    let (mut q, _) = open(dir.path(), o);
    assert_eq!(seqs(&q.read(0, 1, usize::MAX).unwrap()), [1]);
    q.ack(1).unwrap();
    assert_eq!(q.stats().first_unacked_seq, Some(2));
    assert_eq!(seqs(&q.read(1, 10, usize::MAX).unwrap()), [3, 4]);
    let s = q.stats();
    assert_eq!(s.first_unacked_seq, Some(3));
    assert_eq!(s.unacked_entries, 2);
    assert_eq!(s.unacked_bytes, 2 * rl);
}

#[test]
fn a_damaged_position_file_means_redelivery_not_loss() {
    let dir = tempfile::tempdir().unwrap();
    let o = QueueOptions::default();
    {
        let (mut q, _) = open(dir.path(), o);
        fill(&mut q, 1, 3, 10);
        q.ack(2).unwrap();
    }
    flip_bit(&dir.path().join("position"), 9, 0);
    let (mut q, rec) = open(dir.path(), o);
    assert!(rec.position_reset);
    assert_eq!(seqs(&read_all(&mut q, 0)), [1, 2, 3]);
    assert_eq!(q.append(b"x").unwrap(), 4);
    assert!(quarantine_files(dir.path())
        .iter()
        .any(|f| f.starts_with("position.")));
}

#[test]
fn a_stray_record_with_an_old_sequence_number_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let seg = five_in_one_segment(dir.path());
    // Copy record 1 over record 3: intact checksums, wrong place.
    let mut r1 = vec![0u8; record_len(100) as usize];
    OpenOptions::new()
        .read(true)
        .open(&seg)
        .unwrap()
        .read_exact_at(&mut r1, 0)
        .unwrap();
    poke(&seg, start_of(3), &r1);
    let (mut q, rec) = open(dir.path(), QueueOptions::default());
    assert_eq!(rec.corrupt_records, 1);
    assert_eq!(seqs(&read_all(&mut q, 0)), [1, 2, 4, 5]);
}

// ---- verify -----------------------------------------------------------------

fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        if e.path().is_file() {
            v.push((
                e.file_name().to_string_lossy().into_owned(),
                fs::read(e.path()).unwrap(),
            ));
        }
    }
    v.sort();
    v
}

#[test]
fn verify_reports_a_healthy_queue() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(100);
    {
        let (mut q, _) = open(dir.path(), opts(1 << 20, 2 * rl));
        fill(&mut q, 1, 7, 100);
        q.ack(3).unwrap();
    }
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.segments, 3); // 3-4, 5-6, 7
    assert_eq!(report.records, 5);
    assert_eq!(report.unacked_records, 4);
    assert_eq!(report.acked_seq, 3);
    assert_eq!(report.position_file, PositionFile::Valid);
    let missing = verify(&dir.path().join("nope")).unwrap();
    assert!(missing.is_clean());
    assert_eq!(missing.segments, 0);
}

#[test]
fn verify_reports_damage_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rl = record_len(100);
    {
        let (mut q, _) = open(dir.path(), opts(1 << 20, 3 * rl));
        fill(&mut q, 1, 8, 100);
    }
    let segs = segment_files(dir.path());
    assert_eq!(segs.len(), 3);
    flip_bit(&segs[0], rl + HEADER_LEN_U64 + 3, 2); // entry 2, payload
    fs::write(&segs[1], vec![0x5Au8; 50]).unwrap(); // entries 4-6 gone
    let last_len = file_len(&segs[2]);
    OpenOptions::new()
        .write(true)
        .open(&segs[2])
        .unwrap()
        .set_len(last_len - 10)
        .unwrap(); // entry 8 torn
    let before = snapshot(dir.path());
    let report = verify(dir.path()).unwrap();
    assert_eq!(snapshot(dir.path()), before, "verify changed a file");
    assert!(!report.is_clean());
    assert_eq!(report.records, 3); // 1, 3, 7
    assert_eq!(report.corrupt_records, 1);
    assert_eq!(report.corrupt_bytes, rl);
    assert_eq!(report.unreadable_segments, 1);
    assert_eq!(report.torn_tail_bytes, rl - 10);
    assert_eq!(report.position_file, PositionFile::Valid);

    // Open repairs what verify reported.
    let (mut q, rec) = open(dir.path(), opts(1 << 20, 3 * rl));
    assert_eq!(rec.quarantined_segments, 1);
    assert_eq!(rec.torn_bytes_truncated, rl - 10);
    assert_eq!(seqs(&read_all(&mut q, 0)), [1, 3, 7]);
    drop(q);
    let report = verify(dir.path()).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert_eq!(report.already_quarantined, 1);
}
