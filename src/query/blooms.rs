//! Narrowing a search for strings with the blooms kept beside the rows.
//!
//! Each write keeps, per block of its rows (the rows of one minute), the bloom of
//! their messages' trigrams in `chute.line_blooms` (`sinks::postgres::blooms`,
//! format in `crate::batch::bloom`). A plan whose rows must contain strings
//! (`|= "zq7needle"`) first reads the blooms of its window: PostgreSQL tests each
//! with `get_bit` for the strings' trigrams. If the blocks that may hold them
//! carry at most a quarter of the window's lines, the plan is narrowed to their
//! time spans, so PostgreSQL reads those rows only, through the `ts` BRIN;
//! otherwise (a common word like "error") the plan runs as it was.
//!
//! Every row is in some block: writes add them in the same transaction, and the
//! migration that made the table added bloomless blocks (read by every search)
//! for the rows stored before. A window without any block runs unnarrowed.

use chrono::{DateTime, Utc};

use super::plan::{LogPlan, Param, Window};
use super::{shard_error, QueryError};
use crate::batch::bloom;

/// At most this many time spans are added to a plan: more are joined across
/// their smallest gaps (still every candidate block, and some rows between).
const MAX_SPANS: usize = 32;

/// A plan is narrowed only if the candidate blocks hold at most 1 / this of the
/// window's lines: beyond, reading the whole window in order is as fast.
const MAX_SHARE_DIVISOR: i64 = 4;

/// Per block, whether its bloom may hold every probe; summed per window. (`OFFSET
/// 0` keeps the subquery whole, so each bloom is probed once, not once per use.)
pub const BLOCKS: &str = "\
    SELECT coalesce(sum(lines), 0)::int8, count(*), \
           coalesce(sum(lines) FILTER (WHERE maybe), 0)::int8, \
           array_agg(first_ts ORDER BY first_ts) FILTER (WHERE maybe), \
           array_agg(last_ts ORDER BY first_ts) FILTER (WHERE maybe) \
    FROM (SELECT first_ts, last_ts, lines, \
                 bloom IS NULL OR NOT EXISTS ( \
                     SELECT 1 FROM unnest($3::int8[]) AS p \
                     WHERE get_bit(bloom, (p & (octet_length(bloom)::int8 * 8 - 1))::int) = 0 \
                 ) AS maybe \
          FROM chute.line_blooms \
          WHERE first_ts > $1::timestamptz - interval '1 minute' AND first_ts <= $2 \
            AND last_ts >= $1 \
          OFFSET 0) b";

/// What the blooms did for one plan on one shard.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Blocks {
    /// Blocks whose rows were read (they may hold the strings).
    pub read: u64,
    /// Blocks whose rows were skipped.
    pub skipped: u64,
}

/// `plan` narrowed to the blocks that may hold its strings, if that reads
/// markedly less; with what the blooms ruled out.
///
/// # Errors
/// As PostgreSQL answers, named after `shard`.
pub async fn narrow(
    tx: &deadpool_postgres::Transaction<'_>,
    plan: &LogPlan,
    (shard, timeout_ms): (u32, u64),
) -> Result<(Option<LogPlan>, Blocks), QueryError> {
    let probes: Vec<i64> = plan
        .needles
        .iter()
        .flat_map(|n| bloom::probes(n.as_bytes()))
        .collect();
    if probes.is_empty() {
        return Ok((None, Blocks::default()));
    }
    let (lo, hi) = match plan.window {
        Window::Lines { start, end } => (start, end),
        Window::Samples { after, upto } => (after, upto),
    };
    let row = tx
        .query_one(BLOCKS, &[&lo, &hi, &probes])
        .await
        .map_err(|e| shard_error(shard, timeout_ms, &e))?;
    let (lines, blocks, maybe_lines): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    let first: Vec<DateTime<Utc>> = row.get::<_, Option<_>>(3).unwrap_or_default();
    let last: Vec<DateTime<Utc>> = row.get::<_, Option<_>>(4).unwrap_or_default();
    let read = first.len() as u64;
    if blocks == 0 || maybe_lines * MAX_SHARE_DIVISOR > lines {
        return Ok((None, Blocks::default()));
    }
    let blocks = Blocks {
        read,
        skipped: blocks as u64 - read,
    };
    let mut narrowed = plan.clone();
    let spans = spans(first.into_iter().zip(last).collect());
    if spans.is_empty() {
        narrowed.conditions.push("false".into());
        return Ok((Some(narrowed), blocks));
    }
    let any: Vec<String> = spans
        .into_iter()
        .map(|(a, b)| {
            let a = narrowed.bind(Param::Time(a));
            let b = narrowed.bind(Param::Time(b));
            format!("ts >= {a} AND ts <= {b}")
        })
        .collect();
    narrowed.conditions.push(format!("({})", any.join(" OR ")));
    Ok((Some(narrowed), blocks))
}

/// The time spans covering `blocks` (sorted by start): overlapping ones joined,
/// then the closest joined until at most [`MAX_SPANS`] remain.
pub fn spans(blocks: Vec<(DateTime<Utc>, DateTime<Utc>)>) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(blocks.len());
    for (a, b) in blocks {
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    if out.len() > MAX_SPANS {
        let mut gaps: Vec<_> = out.windows(2).map(|w| w[1].0 - w[0].1).collect();
        gaps.sort_unstable();
        // Join every gap up to the one that leaves MAX_SPANS spans (ties join more).
        let widest_joined = gaps[out.len() - MAX_SPANS - 1];
        let mut joined: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::with_capacity(MAX_SPANS);
        for (a, b) in out {
            match joined.last_mut() {
                Some(last) if a - last.1 <= widest_joined => last.1 = last.1.max(b),
                _ => joined.push((a, b)),
            }
        }
        out = joined;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn spans_join_overlaps_then_the_closest() {
        let t = |s: i64| Utc.timestamp_opt(1_700_000_000 + s, 0).unwrap();
        assert_eq!(
            spans(vec![(t(0), t(10)), (t(5), t(20)), (t(30), t(40))]),
            [(t(0), t(20)), (t(30), t(40))]
        );
        // 40 blocks 100 s apart, each 1 s longer than the last: the gaps shrink,
        // so the last 9 blocks are joined into one span.
        let blocks: Vec<_> = (0..40).map(|i| (t(i * 100), t(i * 100 + 50 + i))).collect();
        let s = spans(blocks.clone());
        assert_eq!(s.len(), MAX_SPANS);
        for (a, b) in blocks {
            assert!(s.iter().any(|(x, y)| *x <= a && b <= *y), "{a} covered");
        }
        assert_eq!(s[30], (t(3000), t(3080)));
        assert_eq!(s[31], (t(3100), t(3989)));
    }
}
