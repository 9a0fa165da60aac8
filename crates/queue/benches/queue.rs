//! Queue throughput: append + fsync groups, then reading back.
//!
//! `cargo bench --bench queue` (`QUEUE_BENCH_DIR` picks the file system; the
//! temporary directory by default).

use std::path::PathBuf;
use std::time::Instant;

use chute_queue::{Queue, QueueOptions};

fn main() {
    let base = std::env::var_os("QUEUE_BENCH_DIR").map_or_else(std::env::temp_dir, PathBuf::from);
    for (entry, per_sync, total_mb) in [
        (1024usize, 100usize, 256usize),
        (1024, 1024, 256),
        (1 << 20, 1, 256),
    ] {
        let dir = tempfile::tempdir_in(&base).expect("temp dir");
        let options = QueueOptions {
            max_bytes: 4 << 30,
            segment_bytes: 64 << 20,
        };
        let (mut q, _) = Queue::open(dir.path(), options).expect("open");
        let data = vec![7u8; entry];
        let n = total_mb * (1 << 20) / entry;
        let mut sync_lat = Vec::new();
        let t = Instant::now();
        for i in 0..n {
            q.append(&data).expect("append");
            if (i + 1) % per_sync == 0 {
                let s = Instant::now();
                q.sync().expect("sync");
                sync_lat.push(s.elapsed());
            }
        }
        q.sync().expect("sync");
        let secs = t.elapsed().as_secs_f64();
        sync_lat.sort();
        let p50 = sync_lat[sync_lat.len() / 2];
        let p99 = sync_lat[sync_lat.len() * 99 / 100];
        let t = Instant::now();
        let (mut after, mut count) = (0, 0);
        loop {
            let got = q.read(after, 1000, 8 << 20).expect("read");
            let Some(last) = got.last() else { break };
            after = last.seq;
            count += got.len();
        }
        let rsecs = t.elapsed().as_secs_f64();
        assert_eq!(count, n);
        println!(
            "{}: entry {entry} B, sync every {per_sync}: {:.0} entries/s, {:.0} MB/s; fdatasync p50 {:?} p99 {:?}; read {:.0} MB/s",
            base.display(),
            n as f64 / secs,
            (n * entry) as f64 / secs / 1e6,
            p50,
            p99,
            (n * entry) as f64 / rsecs / 1e6,
        );
    }
}
