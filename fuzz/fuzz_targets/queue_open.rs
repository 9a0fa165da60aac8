//! Opening a damaged queue: whatever bytes the segment and position files hold,
//! `Queue::open` never panics and never fails for the data (only for I/O), every
//! entry it then delivers reads back whole, acknowledging works, and opening again
//! delivers nothing that was acknowledged.
//!
//! Input: first byte, the number of segment files (1 to 3); second byte, where the
//! position file's bytes end (as a share of the rest); the rest is cut into the
//! position file and the segments.

#![no_main]

use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use chute_queue::{Queue, QueueOptions};
use libfuzzer_sys::fuzz_target;

static RUN: AtomicU64 = AtomicU64::new(0);

fn scratch() -> PathBuf {
    let n = RUN.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("chute-fuzz-queue-{}-{n}", std::process::id()))
}

fuzz_target!(|data: &[u8]| {
    let [count, split, rest @ ..] = data else {
        return;
    };
    let segments = usize::from(count % 3) + 1;
    let position_len = rest.len() * usize::from(*split) / 255 / 4;
    let (position, rest) = rest.split_at(position_len.min(rest.len()));
    let dir = scratch();
    fs::create_dir_all(&dir).unwrap();
    if !position.is_empty() {
        fs::write(dir.join("position"), position).unwrap();
    }
    let chunk = rest.len().div_ceil(segments).max(1);
    for (i, bytes) in rest.chunks(chunk).enumerate() {
        // Bases 1, 1001, 2001: names recovery accepts, in order.
        fs::write(dir.join(format!("{:020}.seg", 1 + 1000 * i)), bytes).unwrap();
    }
    let options = QueueOptions {
        max_bytes: 1 << 20,
        segment_bytes: 1 << 16,
    };
    let (mut queue, _recovery) = Queue::open(&dir, options).expect("open fails only on I/O");
    let entries = queue.read(0, usize::MAX, usize::MAX).expect("read");
    let mut last = 0;
    for e in &entries {
        assert!(e.seq > last, "sequence numbers only grow");
        last = e.seq;
    }
    if let Some(upto) = entries.last().map(|e| e.seq) {
        queue.ack(upto).expect("ack of delivered entries");
    }
    drop(queue);
    let (mut queue, _) = Queue::open(&dir, options).expect("reopen");
    let again = queue.read(0, usize::MAX, usize::MAX).expect("read again");
    assert!(again.iter().all(|e| e.seq > last), "an acknowledged entry came back");
    drop(queue);
    fs::remove_dir_all(&dir).unwrap();
});
