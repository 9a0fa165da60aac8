//! Reading and acknowledging: [`Queue::read`] continues from a cursor without
//! searching, [`Queue::ack`] persists the position and deletes consumed segments.
//! Damage met on the way is quarantined and skipped, with the rules of recovery.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use super::format::{segment_name, BadReason, Position};
use super::recovery::write_position;
use super::scan::{next_item, BadRegion, Item, Mode, SegReader};
use super::{io_err, remove_segment_file, Entry, Pos, Queue, QueueError};

impl Queue {
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
    pub(crate) fn walk(&mut self, upto: u64) -> Result<Walk, QueueError> {
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

    pub(crate) fn apply_walk(&mut self, walk: Walk) {
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
    pub(crate) fn delete_before(&mut self, base: u64) {
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

/// Where the consumer's last `read` stopped, so the next one continues without
/// searching: every record before `pos` has a sequence number ≤ `after`.
pub(crate) struct ReadCursor {
    base: u64,
    reader: SegReader,
    pos: u64,
    prev_seq: u64,
    after: u64,
}

/// Where an acknowledgement walk stopped.
pub(crate) struct Walk {
    /// Position of the first unacknowledged record (or the end).
    head: Pos,
    /// (sequence number, append time) of that record, `None` at the end.
    next: Option<(u64, u64)>,
    /// Records passed that were counted as entries.
    passed: u64,
}
