//! Trigram blooms: which three-byte sequences a block of messages may hold, kept
//! beside the rows so that a search for a string reads only the blocks that may
//! hold it.
//!
//! A substring of a line has every trigram (three consecutive bytes) of the
//! substring among the line's trigrams. So a block whose bloom lacks one trigram
//! of the needle holds no line containing the needle, and a search skips it. (A
//! bloom of *words* would not do: `|=` matches anywhere, so `"needle"` must find
//! `"haystackneedle"` too.)
//!
//! The format is stored (`chute.line_blooms.bloom`) and probed by PostgreSQL, so
//! it never changes:
//!
//! - a bit array of `m` bits, `m` a power of two from [`MIN_BITS`] to
//!   [`MAX_BITS`]; bit `n` is bit `n % 8` (least significant first) of byte
//!   `n / 8`, as PostgreSQL's `get_bit(bytea, n)` reads it;
//! - each trigram `t` sets bits `h(t) mod m` and `(h(t) >> 32) mod m`, where `h`
//!   is a tabulation hash: the XOR of one fixed random 64-bit word per byte and
//!   position ([`TABLES`], made by SplitMix64 from a fixed seed).
//!
//! A bloom starts with 4 bits per byte of text, so fewer than 40% of its bits are
//! set whatever the text, and is then folded in half (bit `n` OR bit `n + m/2`
//! into bit `n`, where a probe `h mod m/2` still finds it) while at most 40% of
//! the bits stay set: a trigram not in the block is taken for one at most 16% of
//! the time, a needle of 9 bytes (7 trigrams) about once in 400,000 blocks.

/// The smallest bloom, in bits (64 bytes).
pub const MIN_BITS: usize = 512;
/// The largest bloom, in bits (256 KiB): what a block of 512 KiB of text starts at.
pub const MAX_BITS: usize = 1 << 21;
/// Bits per byte of text a bloom starts with.
const BITS_PER_BYTE: usize = 4;
/// A bloom is folded while at most this share of its bits stays set (per 1000).
const MAX_FILL_PER_MILLE: usize = 400;

/// One 64-bit word per byte value and position in the trigram.
const TABLES: [[u64; 256]; 3] = tables();

const fn tables() -> [[u64; 256]; 3] {
    let mut out = [[0u64; 256]; 3];
    let mut state: u64 = 0x6368_7574_652d_7472; // "chute-tr"
    let mut t = 0;
    while t < 3 {
        let mut b = 0;
        while b < 256 {
            // SplitMix64.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            out[t][b] = z ^ (z >> 31);
            b += 1;
        }
        t += 1;
    }
    out
}

#[inline]
fn hash(t: &[u8]) -> u64 {
    TABLES[0][t[0] as usize] ^ TABLES[1][t[1] as usize] ^ TABLES[2][t[2] as usize]
}

/// A bloom being filled.
#[derive(Debug, Clone)]
pub struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    /// An empty bloom for `text_bytes` bytes of text.
    pub fn for_bytes(text_bytes: usize) -> Bloom {
        let bits = (text_bytes.saturating_mul(BITS_PER_BYTE))
            .next_power_of_two()
            .clamp(MIN_BITS, MAX_BITS);
        Bloom {
            words: vec![0; bits / 64],
        }
    }

    /// Adds the trigrams of `text`.
    pub fn add(&mut self, text: &[u8]) {
        let mask = (self.words.len() * 64 - 1) as u64;
        let words = &mut self.words[..];
        for t in text.windows(3) {
            let h = hash(t);
            for bit in [h & mask, (h >> 32) & mask] {
                words[(bit >> 6) as usize] |= 1 << (bit & 63);
            }
        }
    }

    /// The bloom as stored: folded while it stays sparse enough.
    pub fn finish(mut self) -> Vec<u8> {
        while self.words.len() * 64 > MIN_BITS {
            let half = self.words.len() / 2;
            let (low, high) = self.words.split_at(half);
            let set: usize = low
                .iter()
                .zip(high)
                .map(|(a, b)| (a | b).count_ones() as usize)
                .sum();
            if set * 1000 > half * 64 * MAX_FILL_PER_MILLE {
                break;
            }
            let (low, high) = self.words.split_at_mut(half);
            for (a, b) in low.iter_mut().zip(high.iter()) {
                *a |= b;
            }
            self.words.truncate(half);
        }
        self.words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// What a bloom is probed with for `needle`: for each distinct trigram, the two
/// hash halves whose value modulo the bloom's size is a bit that must be set.
/// Empty when the needle is shorter than a trigram (no bloom can rule it out).
/// Non-negative, so PostgreSQL takes them as `bigint`.
pub fn probes(needle: &[u8]) -> Vec<i64> {
    let mut out: Vec<i64> = needle
        .windows(3)
        .flat_map(|t| {
            let h = hash(t);
            [(h & 0xffff_ffff) as i64, (h >> 32) as i64]
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Whether a stored bloom may hold a line with every probe's trigram: the test
/// PostgreSQL runs with `get_bit` (see `query::blooms`).
pub fn may_hold(bloom: &[u8], probes: &[i64]) -> bool {
    let bits = bloom.len() as i64 * 8;
    bits > 0
        && probes.iter().all(|p| {
            let n = p & (bits - 1);
            bloom[(n / 8) as usize] >> (n % 8) & 1 == 1
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bloom(lines: &[&str]) -> Vec<u8> {
        let mut b = Bloom::for_bytes(lines.iter().map(|l| l.len()).sum());
        for l in lines {
            b.add(l.as_bytes());
        }
        b.finish()
    }

    #[test]
    fn every_substring_of_a_line_is_found() {
        let lines = [
            "GET /api/v1/users 200 12ms",
            "upstream timeout haystackneedle",
        ];
        let b = bloom(&lines);
        for l in lines {
            for i in 0..l.len() {
                for j in i + 3..=l.len() {
                    assert!(may_hold(&b, &probes(&l.as_bytes()[i..j])), "{}", &l[i..j]);
                }
            }
        }
    }

    #[test]
    fn absent_strings_are_mostly_ruled_out_and_blooms_are_folded_to_size() {
        // 2000 lines of varied text: a 9-byte string that is not there is ruled out.
        let lines: Vec<String> = (0..2000)
            .map(|i| format!("request {i} from host-{} took {}ms", i % 37, i * 7 % 1000))
            .collect();
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let b = bloom(&refs);
        let text: usize = refs.iter().map(|l| l.len()).sum();
        assert!(
            b.len() * 8 < text * BITS_PER_BYTE,
            "folded: {} bytes",
            b.len()
        );
        let set: u32 = b.iter().map(|x| x.count_ones()).sum();
        assert!(set as usize * 1000 <= b.len() * 8 * MAX_FILL_PER_MILLE);
        let misses = (0..1000)
            .filter(|i| may_hold(&b, &probes(format!("zq{i}needle").as_bytes())))
            .count();
        assert!(misses < 5, "{misses} false positives in 1000");
    }

    #[test]
    fn short_needles_and_tiny_blocks() {
        assert!(probes(b"ab").is_empty());
        let b = bloom(&["x"]);
        assert_eq!(b.len(), MIN_BITS / 8);
        assert!(may_hold(&b, &probes(b"ab")), "no trigram rules nothing out");
        assert!(!may_hold(&b, &probes(b"abc")));
        assert!(!may_hold(&[], &probes(b"abc")));
    }

    #[test]
    fn the_hash_tables_never_change() {
        // Stored blooms depend on them: a change would make old blocks unreadable.
        let fixed: u64 = TABLES.iter().flatten().fold(0, |a, w| a.rotate_left(5) ^ w);
        assert_eq!(fixed, 0xa7ab_a69d_3880_261c, "{fixed:#x}");
        assert_eq!(probes(b"abc"), [28_996_871, 3_403_183_246]);
    }
}
