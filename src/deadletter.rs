//! Dead letters: forwarded batches a peer refused in a way no retry can cure (it
//! does not own the shard any more, or cannot take or read the batch). The peer
//! link moves such an entry here, out of its queue, so the batches behind it go
//! on; an operator lists, replays or drops them (`chute deadletter`).
//!
//! One file per entry, `<data_dir>/deadletter/<peer>/<queue seq>.dead`, mode 0600:
//!
//! ```text
//! chute-deadletter 1\n
//! <the entry's description, one line of JSON (Meta)>\n
//! <the batch payload, as in the queue (EncodedRows::to_payload)>
//! ```
//! Written to a temporary name, fsynced, renamed and the directory fsynced before
//! the queue entry is acknowledged: a crash leaves the entry in the queue (sent
//! again, refused again) or here, never neither. Replaying delivers the batch
//! under its original id to whichever node owns its shard now, so it is stored
//! once even if a replay is cut short and run again.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// First line of every dead-letter file.
const MAGIC: &str = "chute-deadletter 1";
/// Longest description line read back (ids and error texts are short).
const MAX_META_BYTES: u64 = 64 * 1024;
const SUFFIX: &str = ".dead";

/// What is known of a dead-lettered batch; the first lines of its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// `<peer>/<queue seq>`: names the entry for `chute deadletter replay|drop`.
    pub id: String,
    /// The node that refused it.
    pub peer: String,
    pub shard: u32,
    /// The batch id it is stored under once replayed (as first forwarded).
    pub batch: String,
    pub records: usize,
    /// Payload bytes.
    pub bytes: usize,
    /// Bounded reason (`chute_deadletter_moved_total`): `too_large`,
    /// `shard_not_owned` or `malformed`.
    pub reason: String,
    /// The peer's answer, status and text.
    pub error: String,
    /// When it was set aside (RFC 3339).
    pub at: String,
}

/// The dead-letter directory of one node.
#[derive(Debug, Clone)]
pub struct DeadLetters {
    root: PathBuf,
}

impl DeadLetters {
    /// Dead letters under `<data_dir>/deadletter`.
    pub fn new(data_dir: &Path) -> DeadLetters {
        DeadLetters {
            root: data_dir.join("deadletter"),
        }
    }

    /// Sets aside the batch `payload` of queue entry `seq` refused by `meta.peer`;
    /// durable when this returns. Fills in `meta.id`.
    ///
    /// # Errors
    /// Creating, writing or syncing the file failed; nothing is left behind but
    /// possibly a temporary file, which [`DeadLetters::list`] ignores.
    pub fn put(&self, mut meta: Meta, seq: u64, payload: &[u8]) -> io::Result<Meta> {
        let dir = self.root.join(&meta.peer);
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
        // A queue recreated from scratch numbers from 1 again: never overwrite.
        let mut name = format!("{seq:020}");
        let mut n = 0;
        while dir.join(format!("{name}{SUFFIX}")).exists() {
            n += 1;
            name = format!("{seq:020}-{n}");
        }
        meta.id = format!("{}/{name}", meta.peer);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut head = format!("{MAGIC}\n");
        head.push_str(&serde_json::to_string(&meta).map_err(io::Error::other)?);
        head.push('\n');
        file.write_all(head.as_bytes())?;
        file.write_all(payload)?;
        file.sync_all()?;
        fs::rename(&tmp, dir.join(format!("{name}{SUFFIX}")))?;
        File::open(&dir)?.sync_all()?;
        Ok(meta)
    }

    /// How many dead letters `peer` has (files, without reading them).
    ///
    /// # Errors
    /// The directory could not be read.
    pub fn count(&self, peer: &str) -> io::Result<usize> {
        match fs::read_dir(self.root.join(peer)) {
            Ok(files) => Ok(files
                .flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
                })
                .count()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Sets `chute_deadletter_entries` for every peer in `peers` and every peer
    /// with a dead-letter directory (a node that has left the cluster included).
    pub fn refresh_gauges(&self, metrics: &crate::metrics::Metrics, peers: &[String]) {
        let mut all: Vec<String> = peers.to_vec();
        if let Ok(dirs) = fs::read_dir(&self.root) {
            all.extend(
                dirs.flatten()
                    .filter(|e| e.path().is_dir())
                    .filter_map(|e| e.file_name().to_str().map(str::to_owned)),
            );
        }
        all.sort();
        all.dedup();
        for peer in all {
            match self.count(&peer) {
                Ok(n) => metrics
                    .deadletter_entries
                    .with_label_values(&[&peer])
                    .set(n as i64),
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "cannot count the dead letters");
                }
            }
        }
    }

    /// Every dead letter, by peer and queue order, with its file.
    ///
    /// # Errors
    /// The directory could not be read. Files that are not dead letters (or are
    /// damaged) are skipped with a warning.
    pub fn list(&self) -> io::Result<Vec<(Meta, PathBuf)>> {
        let mut out = Vec::new();
        let peers = match fs::read_dir(&self.root) {
            Ok(p) => p,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let mut dirs: Vec<PathBuf> = peers
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            let mut files: Vec<PathBuf> = fs::read_dir(&dir)?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(SUFFIX) && !n.starts_with('.'))
                })
                .collect();
            // By name without the suffix: `…09` before `…09-1`.
            files.sort_by(|a, b| a.file_stem().cmp(&b.file_stem()));
            for path in files {
                match read_meta(&path) {
                    Ok((meta, _)) => out.push((meta, path)),
                    Err(e) => {
                        tracing::warn!(file = %path.display(), error = %e, "not a readable dead letter; skipped");
                    }
                }
            }
        }
        Ok(out)
    }

    /// The description and payload of the dead letter at `path` (from
    /// [`DeadLetters::list`]).
    ///
    /// # Errors
    /// The file could not be read or is not a dead letter.
    pub fn read(path: &Path) -> io::Result<(Meta, Vec<u8>)> {
        let (meta, mut reader) = read_meta(path)?;
        let mut payload = Vec::with_capacity(meta.bytes.min(256 << 20));
        reader.read_to_end(&mut payload)?;
        if payload.len() != meta.bytes {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "payload length differs from its description",
            ));
        }
        Ok((meta, payload))
    }

    /// Removes the dead letter at `path`, durably.
    ///
    /// # Errors
    /// The file could not be removed.
    pub fn remove(path: &Path) -> io::Result<()> {
        fs::remove_file(path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

fn read_meta(path: &Path) -> io::Result<(Meta, BufReader<File>)> {
    let invalid = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_owned());
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = String::new();
    (&mut reader).take(MAX_META_BYTES).read_line(&mut line)?;
    if line.trim_end() != MAGIC {
        return Err(invalid("not a chute dead letter"));
    }
    line.clear();
    (&mut reader).take(MAX_META_BYTES).read_line(&mut line)?;
    let meta: Meta =
        serde_json::from_str(line.trim_end()).map_err(|_| invalid("damaged description"))?;
    Ok((meta, reader))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn meta(peer: &str, batch: &str) -> Meta {
        Meta {
            id: String::new(),
            peer: peer.into(),
            shard: 3,
            batch: batch.into(),
            records: 2,
            bytes: 5,
            reason: "shard_not_owned".into(),
            error: "409 Conflict: shard 3 is not written by node b".into(),
            at: "2026-12-02T01:00:00Z".into(),
        }
    }

    #[test]
    fn dead_letters_are_private_listed_in_order_read_back_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::new(dir.path());
        assert!(dl.list().unwrap().is_empty(), "no directory yet: none");
        let b9 = dl.put(meta("b", "q:9"), 9, b"hello").unwrap();
        let b7 = dl.put(meta("b", "q:7"), 7, b"world").unwrap();
        let a1 = dl.put(meta("a", "k/3"), 1, b"12345").unwrap();
        // The same sequence number again (a queue made anew): a name of its own.
        let again = dl.put(meta("b", "r:9"), 9, b"again").unwrap();
        assert_eq!(b9.id, "b/00000000000000000009");
        assert_eq!(again.id, "b/00000000000000000009-1");
        // A temporary file left by a crash is not a dead letter.
        fs::write(
            dir.path().join("deadletter/b/.00000000000000000011.tmp"),
            "x",
        )
        .unwrap();
        let listed: Vec<String> = dl.list().unwrap().into_iter().map(|(m, _)| m.id).collect();
        assert_eq!(
            listed,
            [
                a1.id.clone(),
                b7.id.clone(),
                b9.id.clone(),
                again.id.clone()
            ]
        );
        let (_, path) = dl.list().unwrap().into_iter().nth(1).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        let (m, payload) = DeadLetters::read(&path).unwrap();
        assert_eq!((m, payload.as_slice()), (b7, &b"world"[..]));
        DeadLetters::remove(&path).unwrap();
        assert_eq!(dl.list().unwrap().len(), 3);
        assert_eq!((dl.count("b").unwrap(), dl.count("a").unwrap()), (2, 1));
        assert_eq!(dl.count("nobody").unwrap(), 0);
    }

    #[test]
    fn a_damaged_dead_letter_is_skipped_by_list_and_refused_by_read() {
        let dir = tempfile::tempdir().unwrap();
        let dl = DeadLetters::new(dir.path());
        dl.put(meta("b", "q:1"), 1, b"hello").unwrap();
        let (_, path) = dl.list().unwrap().remove(0);
        let text = fs::read(&path).unwrap();
        // Cut short: the payload is shorter than its description says.
        fs::write(&path, &text[..text.len() - 1]).unwrap();
        assert!(DeadLetters::read(&path).is_err());
        fs::write(&path, b"something else\n{}\n").unwrap();
        assert!(dl.list().unwrap().is_empty());
    }
}
