//! A model-based property test: random runs of append, sync, read, ack, crash and
//! restart against the real queue on real files, checked after every step against a
//! plain in-memory list of what must be there.
//!
//! A crash keeps the synced bytes and a random prefix of the unsynced ones, cut at any
//! byte (so records get torn): the test remembers each segment file's length at the
//! last sync and throws away everything after a random point past it, deleting the
//! files created since. A restart (process death without losing the page cache) keeps
//! everything. After either, every synced unacknowledged entry must come back exactly
//! once and in order, followed by a prefix of the unsynced ones, and no acknowledged
//! entry may come back.

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;

use proptest::prelude::*;

use super::format::HEADER_LEN_U64;
use super::*;

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Sync,
    Read(usize),
    /// Acknowledge one of the synced entries, picked by the number.
    Ack(u8),
    /// Lose unsynced data, cut at a point picked by the number.
    Crash(u16),
    /// Reopen without losing anything.
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0usize..300).prop_map(Op::Append),
        3 => Just(Op::Sync),
        3 => (1usize..6).prop_map(Op::Read),
        2 => any::<u8>().prop_map(Op::Ack),
        1 => any::<u16>().prop_map(Op::Crash),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct ModelEntry {
    seq: u64,
    payload: Vec<u8>,
    synced: bool,
}

struct Harness {
    dir: tempfile::TempDir,
    opts: QueueOptions,
    q: Option<Queue>,
    /// Unacknowledged entries, oldest first.
    entries: VecDeque<ModelEntry>,
    acked: u64,
    /// The consumer's `after`.
    consumer: u64,
    /// Highest sequence number that was synced (so must never be handed out again).
    durable_max: u64,
    /// Highest sequence number handed out since the last (re)open.
    session_max: u64,
    /// Segment file lengths known to be durable.
    durable_len: BTreeMap<String, u64>,
    counter: u64,
}

fn payload(n: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (n.wrapping_mul(0x9E37_79B9) >> (i % 8)) as u8 ^ i as u8)
        .collect()
}

/// A scratch directory, on tmpfs where there is one: these tests simulate crashes
/// themselves, and real fsyncs on a busy shared disk would only make them slow.
fn scratch_dir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::tempdir_in(shm) {
            return dir;
        }
    }
    tempfile::tempdir().unwrap()
}

fn segment_lens(dir: &Path) -> BTreeMap<String, u64> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

impl Harness {
    fn new(opts: QueueOptions) -> Harness {
        let dir = scratch_dir();
        let (q, rec) = Queue::open(dir.path(), opts).unwrap();
        assert_eq!(rec, Recovery::default());
        let durable_len = segment_lens(dir.path());
        Harness {
            dir,
            opts,
            q: Some(q),
            entries: VecDeque::new(),
            acked: 0,
            consumer: 0,
            durable_max: 0,
            session_max: 0,
            durable_len,
            counter: 0,
        }
    }

    fn q(&mut self) -> &mut Queue {
        self.q.as_mut().unwrap()
    }

    fn unacked_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| HEADER_LEN_U64 + e.payload.len() as u64)
            .sum()
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::Append(len) => self.append(len),
            Op::Sync => {
                self.q().sync().unwrap();
                for e in &mut self.entries {
                    e.synced = true;
                }
                self.durable_max = self.durable_max.max(self.session_max);
                self.durable_len = segment_lens(self.dir.path());
            }
            Op::Read(max) => {
                let after = self.consumer;
                let got = self.q().read(after, max, usize::MAX).unwrap();
                let floor = after.max(self.acked);
                let want: Vec<(u64, Vec<u8>)> = self
                    .entries
                    .iter()
                    .filter(|e| e.synced && e.seq > floor)
                    .take(max)
                    .map(|e| (e.seq, e.payload.clone()))
                    .collect();
                let got: Vec<(u64, Vec<u8>)> =
                    got.into_iter().map(|e| (e.seq, e.payload)).collect();
                assert_eq!(got, want, "read(after {after}, max {max})");
                if let Some((last, _)) = got.last() {
                    self.consumer = *last;
                }
            }
            Op::Ack(pick) => {
                let synced: Vec<u64> = self
                    .entries
                    .iter()
                    .filter(|e| e.synced)
                    .map(|e| e.seq)
                    .collect();
                if let Some(unsynced) = self.entries.iter().find(|e| !e.synced).map(|e| e.seq) {
                    if pick % 5 == 0 {
                        assert!(matches!(
                            self.q().ack(unsynced),
                            Err(QueueError::AckBeyondSynced { .. })
                        ));
                        return;
                    }
                }
                if synced.is_empty() {
                    let acked = self.acked;
                    self.q().ack(acked).unwrap();
                    return;
                }
                let upto = synced[pick as usize % synced.len()];
                self.q().ack(upto).unwrap();
                self.entries.retain(|e| e.seq > upto);
                self.acked = upto;
            }
            Op::Crash(cut) => {
                drop(self.q.take());
                self.lose_unsynced(u64::from(cut));
                self.reopen(false);
            }
            Op::Restart => {
                drop(self.q.take());
                self.reopen(true);
            }
        }
    }

    fn append(&mut self, len: usize) {
        self.counter += 1;
        let p = payload(self.counter, len);
        let record = HEADER_LEN_U64 + len as u64;
        let max = self.opts.max_bytes;
        let before = self.q().stats();
        match self.q().append(&p) {
            Ok(seq) => {
                assert!(record <= max && self.unacked_bytes() + record <= max);
                assert!(
                    seq > self.durable_max && seq > self.session_max && seq > self.acked,
                    "sequence number {seq} reused (durable {}, session {})",
                    self.durable_max,
                    self.session_max
                );
                self.session_max = seq;
                self.entries.push_back(ModelEntry {
                    seq,
                    payload: p,
                    synced: false,
                });
            }
            Err(QueueError::TooLarge { .. }) => assert!(record > max),
            Err(QueueError::Full { .. }) => {
                assert!(record <= max && self.unacked_bytes() + record > max);
                assert_eq!(
                    self.q().stats(),
                    before,
                    "a refused append changed the queue"
                );
            }
            Err(e) => panic!("append failed: {e}"),
        }
    }

    /// Keeps the durable bytes and a prefix of the rest, `cut` bytes long (modulo).
    fn lose_unsynced(&mut self, cut: u64) {
        let dir = self.dir.path().to_path_buf();
        let now = segment_lens(&dir);
        let unsynced: u64 = now
            .iter()
            .map(|(name, len)| len - self.durable_len.get(name).copied().unwrap_or(0).min(*len))
            .sum();
        let mut keep = cut % (unsynced + 1);
        for (name, len) in &now {
            let durable = self.durable_len.get(name).copied().unwrap_or(0).min(*len);
            let extra = len - durable;
            let path = dir.join(name);
            if keep >= extra {
                keep -= extra;
            } else if keep == 0 && !self.durable_len.contains_key(name) {
                fs::remove_file(&path).unwrap();
            } else {
                let f = OpenOptions::new().write(true).open(&path).unwrap();
                f.set_len(durable + keep).unwrap();
                keep = 0;
            }
        }
    }

    fn reopen(&mut self, kept_everything: bool) {
        let before = verify(self.dir.path()).unwrap();
        let (q, rec) = Queue::open(self.dir.path(), self.opts).unwrap();
        assert_eq!(rec.corrupt_records, 0, "{rec:?}");
        assert_eq!(rec.quarantined_bytes, 0, "{rec:?}");
        assert_eq!(rec.quarantined_segments, 0, "{rec:?}");
        assert!(!rec.position_reset);
        assert_eq!(before.corrupt_records, 0, "{before:?}");
        assert_eq!(before.unreadable_segments, 0, "{before:?}");
        assert_eq!(before.torn_tail_bytes, rec.torn_bytes_truncated);
        if kept_everything {
            assert_eq!(rec, Recovery::default());
        }
        self.q = Some(q);
        self.session_max = 0;
        self.durable_len = segment_lens(self.dir.path());

        let mut got = Vec::new();
        let mut after = 0;
        loop {
            let batch = self.q().read(after, 7, usize::MAX).unwrap();
            let Some(last) = batch.last() else { break };
            after = last.seq;
            got.extend(batch);
        }
        let synced: Vec<&ModelEntry> = self.entries.iter().filter(|e| e.synced).collect();
        let unsynced: Vec<&ModelEntry> = self.entries.iter().filter(|e| !e.synced).collect();
        let got_pairs: Vec<(u64, &[u8])> = got.iter().map(|e| (e.seq, &e.payload[..])).collect();
        let want_synced: Vec<(u64, &[u8])> =
            synced.iter().map(|e| (e.seq, &e.payload[..])).collect();
        assert!(
            got_pairs.len() >= want_synced.len()
                && got_pairs[..want_synced.len()] == want_synced[..],
            "synced entries lost or reordered after reopen"
        );
        let rest = &got_pairs[want_synced.len()..];
        let want_rest: Vec<(u64, &[u8])> =
            unsynced.iter().map(|e| (e.seq, &e.payload[..])).collect();
        assert!(
            rest.len() <= want_rest.len() && rest == &want_rest[..rest.len()],
            "survivors of the crash are not a prefix of the unsynced entries"
        );
        if kept_everything {
            assert_eq!(rest.len(), want_rest.len(), "a restart lost entries");
        }
        self.entries = got
            .into_iter()
            .map(|e| ModelEntry {
                seq: e.seq,
                payload: e.payload,
                synced: true,
            })
            .collect();
        if let Some(last) = self.entries.back() {
            self.durable_max = self.durable_max.max(last.seq);
        }
        // The consumer restarts from the persisted acknowledgement.
        self.consumer = self.acked;
    }

    fn check_stats(&mut self) {
        let s = self.q().stats();
        assert_eq!(s.unacked_entries, self.entries.len() as u64, "{s:?}");
        assert_eq!(s.unacked_bytes, self.unacked_bytes(), "{s:?}");
        assert_eq!(s.first_unacked_seq, self.entries.front().map(|e| e.seq));
        assert_eq!(s.acked_seq, self.acked);
        assert_eq!(s.corrupt_records, 0);
        assert!(!s.poisoned);
        assert!(s.next_seq > self.durable_max.max(self.session_max));
        assert_eq!(s.segments, segment_lens(self.dir.path()).len());
    }

    /// Drains everything and checks that only the segment being written is left.
    fn finish(&mut self) {
        self.q().sync().unwrap();
        let mut after = self.acked;
        let mut last = None;
        loop {
            let batch = self.q().read(after, 100, usize::MAX).unwrap();
            let Some(e) = batch.last() else { break };
            after = e.seq;
            last = Some(e.seq);
        }
        assert_eq!(last, self.entries.back().map(|e| e.seq));
        if let Some(last) = last {
            self.q().ack(last).unwrap();
        }
        let s = self.q().stats();
        assert_eq!((s.unacked_entries, s.unacked_bytes, s.segments), (0, 0, 1));
        let report = verify(self.dir.path()).unwrap();
        assert!(report.is_clean(), "{report:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_queue_behaves_like_its_model_through_crashes_and_restarts(
        max_bytes in 400u64..4000,
        segment_bytes in 64u64..1500,
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        let mut h = Harness::new(QueueOptions { max_bytes, segment_bytes });
        for op in &ops {
            h.step(op);
            h.check_stats();
        }
        h.finish();
    }
}

/// Damage done to one file of a healthy queue.
#[derive(Debug, Clone)]
enum Damage {
    Flip { file: u8, at: u32, bit: u8 },
    Zero { file: u8, at: u32, len: u16 },
    Garbage { file: u8, at: u32, bytes: Vec<u8> },
    Truncate { file: u8, at: u32 },
    Position { at: u8, byte: u8 },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        4 => (any::<u8>(), any::<u32>(), 0u8..8).prop_map(|(file, at, bit)| Damage::Flip { file, at, bit }),
        2 => (any::<u8>(), any::<u32>(), 1u16..600).prop_map(|(file, at, len)| Damage::Zero { file, at, len }),
        2 => (any::<u8>(), any::<u32>(), proptest::collection::vec(any::<u8>(), 1..300))
            .prop_map(|(file, at, bytes)| Damage::Garbage { file, at, bytes }),
        1 => (any::<u8>(), any::<u32>()).prop_map(|(file, at)| Damage::Truncate { file, at }),
        1 => (0u8..40, any::<u8>()).prop_map(|(at, byte)| Damage::Position { at, byte }),
    ]
}

/// Where each record of a pristine queue lies: seq → (segment file name, start, end).
fn record_map(dir: &Path) -> BTreeMap<u64, (String, u64, u64)> {
    let mut map = BTreeMap::new();
    for name in segment_lens(dir).keys() {
        let path = dir.join(name);
        let mut r = super::scan::SegReader::open(&path).unwrap();
        let len = r.file_len().unwrap();
        let mut pos = 0;
        while let super::scan::Item::Record {
            header, start, end, ..
        } = super::scan::next_item(&mut r, pos, len, 0, super::scan::Mode::Verify).unwrap()
        {
            map.insert(header.seq, (name.clone(), start, end));
            pos = end;
        }
    }
    map
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Whatever happens to the files, open and read neither fail nor panic, deliver
    /// only entries exactly as appended, and deliver every entry whose bytes were not
    /// touched.
    #[test]
    fn damaged_files_never_stop_the_queue_and_untouched_entries_are_delivered(
        sizes in proptest::collection::vec(0usize..400, 1..40),
        segment_bytes in 100u64..3000,
        damages in proptest::collection::vec(damage(), 1..6),
    ) {
        let dir = scratch_dir();
        let opts = QueueOptions { max_bytes: 1 << 20, segment_bytes };
        let mut originals = BTreeMap::new();
        {
            let (mut q, _) = Queue::open(dir.path(), opts).unwrap();
            for (i, &len) in sizes.iter().enumerate() {
                let p = payload(i as u64, len);
                let seq = q.append(&p).unwrap();
                originals.insert(seq, p);
            }
            q.sync().unwrap();
        }
        let layout = record_map(dir.path());
        prop_assert_eq!(layout.len(), originals.len());

        // Byte ranges touched per file: (start, end); a truncation touches the rest.
        let mut touched: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for d in &damages {
            let files: Vec<(String, u64)> = segment_lens(dir.path()).into_iter().collect();
            let pick = |f: u8| files[f as usize % files.len()].clone();
            let (name, at, bytes): (String, u64, Option<Vec<u8>>) = match d {
                Damage::Flip { file, at, bit } => {
                    let (name, len) = pick(*file);
                    if len == 0 { continue; }
                    let at = u64::from(*at) % len;
                    let mut b = [0u8];
                    let f = OpenOptions::new().read(true).write(true).open(dir.path().join(&name)).unwrap();
                    f.read_exact_at(&mut b, at).unwrap();
                    (name, at, Some(vec![b[0] ^ (1 << bit)]))
                }
                Damage::Zero { file, at, len: n } => {
                    let (name, len) = pick(*file);
                    (name, u64::from(*at) % (len + 1), Some(vec![0; usize::from(*n)]))
                }
                Damage::Garbage { file, at, bytes } => {
                    let (name, len) = pick(*file);
                    (name, u64::from(*at) % (len + 1), Some(bytes.clone()))
                }
                Damage::Truncate { file, at } => {
                    let (name, len) = pick(*file);
                    (name, u64::from(*at) % (len + 1), None)
                }
                Damage::Position { at, byte } => {
                    let p = dir.path().join("position");
                    if let Ok(f) = OpenOptions::new().write(true).open(&p) {
                        f.write_all_at(&[*byte], u64::from(*at)).unwrap();
                    }
                    continue;
                }
            };
            let path = dir.path().join(&name);
            let f = OpenOptions::new().write(true).open(&path).unwrap();
            match bytes {
                Some(b) => {
                    f.write_all_at(&b, at).unwrap();
                    touched.entry(name).or_default().push((at, at + b.len() as u64));
                }
                None => {
                    f.set_len(at).unwrap();
                    touched.entry(name).or_default().push((at, u64::MAX));
                }
            }
        }

        let report = verify(dir.path());
        prop_assert!(report.is_ok(), "verify failed: {:?}", report.err());
        let (mut q, _rec) = match Queue::open(dir.path(), opts) {
            Ok(q) => q,
            Err(e) => return Err(TestCaseError::fail(format!("open failed: {e}"))),
        };
        let mut delivered = Vec::new();
        let mut after = 0;
        loop {
            let batch = q.read(after, 5, usize::MAX).unwrap();
            let Some(last) = batch.last() else { break };
            after = last.seq;
            delivered.extend(batch);
        }
        let mut prev = 0;
        for e in &delivered {
            prop_assert!(e.seq > prev, "out of order");
            prev = e.seq;
            prop_assert_eq!(Some(&e.payload), originals.get(&e.seq), "entry {} changed", e.seq);
        }
        let got: std::collections::BTreeSet<u64> = delivered.iter().map(|e| e.seq).collect();
        for (seq, (name, start, end)) in &layout {
            let hit = touched
                .get(name)
                .is_some_and(|rs| rs.iter().any(|&(a, b)| a < *end && *start < b));
            if !hit {
                prop_assert!(got.contains(seq), "untouched entry {} was not delivered", seq);
            }
        }
        let next = q.append(b"after").unwrap();
        prop_assert!(next > prev);
        q.sync().unwrap();
        drop(q);
        // A second open is just as fine, and still delivers the new entry.
        let (mut q, _) = Queue::open(dir.path(), opts).unwrap();
        let again = q.read(next - 1, 10, usize::MAX).unwrap();
        prop_assert_eq!(again.first().map(|e| e.seq), Some(next));
    }
}
