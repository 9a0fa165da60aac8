//! The files that grow beside the queues, kept within `[retention]`: quarantined
//! bytes (`queues/*/quarantine/`, damaged stretches kept for a person) and dead
//! letters (`deadletter/*/`, batches a peer refused for good).
//!
//! A file goes past its age, then, oldest first, while its kind holds more than
//! its size; a quarantine file takes its note (`<name>.txt`) with it. Dead
//! letters hold acknowledged records that are stored nowhere else, so they are
//! kept unless `deadletter_max_age_days` says otherwise, and each one removed is
//! logged.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::config::RetentionConfig;
use crate::metrics::Metrics;

/// One kind of file and its limits.
pub struct Kind {
    /// The `kind` label.
    pub name: &'static str,
    /// The directories that hold them.
    pub dirs: Vec<PathBuf>,
    pub max_age: Option<Duration>,
    pub max_bytes: Option<u64>,
}

/// A file that counts against its kind's limits, with its note, if any.
struct Item {
    path: PathBuf,
    note: Option<PathBuf>,
    bytes: u64,
    modified: SystemTime,
}

/// The kinds of files `[retention]` limits under `data_dir`.
pub fn kinds(data_dir: &Path, config: &RetentionConfig) -> Vec<Kind> {
    let days = |d: u32| (d > 0).then(|| Duration::from_secs(u64::from(d) * 86_400));
    let mib = |m: u64| (m > 0).then(|| m.saturating_mul(1 << 20));
    let subdirs = |root: PathBuf, sub: Option<&str>| -> Vec<PathBuf> {
        fs::read_dir(root)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| match sub {
                        Some(s) => e.path().join(s),
                        None => e.path(),
                    })
                    .filter(|p| p.is_dir())
                    .collect()
            })
            .unwrap_or_default()
    };
    vec![
        Kind {
            name: "quarantine",
            dirs: subdirs(data_dir.join("queues"), Some("quarantine")),
            max_age: days(config.quarantine_max_age_days),
            max_bytes: mib(config.quarantine_max_mib),
        },
        Kind {
            name: "deadletter",
            dirs: subdirs(data_dir.join("deadletter"), None),
            max_age: days(config.deadletter_max_age_days),
            max_bytes: None,
        },
    ]
}

/// The files of `dirs`, oldest first; notes ride with the file they describe.
fn items(dirs: &[PathBuf]) -> io::Result<Vec<Item>> {
    let mut out = Vec::new();
    for dir in dirs {
        for entry in fs::read_dir(dir)?.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporary files are someone's write in progress; notes go with theirs.
            if name.starts_with('.') || name.ends_with(".txt") {
                continue;
            }
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() {
                continue;
            }
            let stem = name.strip_suffix(".bad").unwrap_or(&name);
            let note = dir.join(format!("{stem}.txt"));
            out.push(Item {
                note: note.exists().then_some(note),
                bytes: meta.len(),
                modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                path,
            });
        }
    }
    out.sort_by_key(|i| i.modified);
    Ok(out)
}

/// Removes what is past `kind`'s limits as of `now`; returns (files, bytes)
/// removed for age and for size.
pub fn sweep(kind: &Kind, now: SystemTime) -> io::Result<[(u64, u64); 2]> {
    let mut removed = [(0, 0); 2];
    if kind.max_age.is_none() && kind.max_bytes.is_none() {
        return Ok(removed);
    }
    let items = items(&kind.dirs)?;
    let mut total: u64 = items.iter().map(|i| i.bytes).sum();
    for item in items {
        let old = kind
            .max_age
            .is_some_and(|age| now.duration_since(item.modified).unwrap_or_default() > age);
        let over = kind.max_bytes.is_some_and(|max| total > max);
        let why = match (old, over) {
            (true, _) => 0,
            (false, true) => 1,
            (false, false) => continue,
        };
        fs::remove_file(&item.path)?;
        if let Some(note) = &item.note {
            let _ = fs::remove_file(note);
        }
        total -= item.bytes;
        removed[why].0 += 1;
        removed[why].1 += item.bytes;
        tracing::warn!(kind = kind.name, file = %item.path.display(), bytes = item.bytes, reason = ["age", "size"][why], "retention removed a file");
    }
    Ok(removed)
}

/// Sweeps every kind under `data_dir`, counting what went; errors are logged.
pub fn sweep_all(data_dir: &Path, config: &RetentionConfig, metrics: &Metrics) {
    for kind in kinds(data_dir, config) {
        match sweep(&kind, SystemTime::now()) {
            Ok(removed) => {
                for ((files, bytes), reason) in removed.into_iter().zip(["age", "size"]) {
                    metrics
                        .retention_files
                        .with_label_values(&[kind.name, reason])
                        .inc_by(files);
                    metrics
                        .retention_file_bytes
                        .with_label_values(&[kind.name, reason])
                        .inc_by(bytes);
                }
            }
            Err(e) => {
                tracing::warn!(kind = kind.name, error = %e, "retention could not sweep files")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str, bytes: usize, age_s: u64) {
        let path = dir.join(name);
        fs::write(&path, vec![0u8; bytes]).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_s);
        fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn files_go_past_their_age_then_oldest_first_past_the_size_with_their_notes() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        file(d, "a.seg.1.bad", 100, 10 * 86_400);
        file(d, "a.seg.1.txt", 10, 10 * 86_400);
        file(d, "b.seg", 300, 3 * 86_400);
        file(d, "b.seg.txt", 10, 3 * 86_400);
        file(d, "c.seg.7.bad", 300, 2 * 86_400);
        file(d, "d.seg.9.bad", 300, 60);
        file(d, ".e.tmp", 5000, 20 * 86_400);
        let kind = Kind {
            name: "quarantine",
            dirs: vec![d.to_owned()],
            max_age: Some(Duration::from_secs(7 * 86_400)),
            max_bytes: Some(700),
        };
        let removed = sweep(&kind, SystemTime::now()).unwrap();
        assert_eq!(removed, [(1, 100), (1, 300)]);
        let mut left: Vec<String> = fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, [".e.tmp", "c.seg.7.bad", "d.seg.9.bad"]);
        // Within the limits now: nothing more goes.
        assert_eq!(sweep(&kind, SystemTime::now()).unwrap(), [(0, 0), (0, 0)]);
    }
}
