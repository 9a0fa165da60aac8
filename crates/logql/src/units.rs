//! Durations (`1h30m`, `250ms`) and byte sizes (`20KB`, `1.5MiB`): parsing as Loki
//! does, and printing in a canonical form that parses back to the same value.

use std::fmt;

const NS_PER_MS: u128 = 1_000_000;
const NS_PER_S: u128 = 1_000_000_000;
const NS_PER_M: u128 = 60 * NS_PER_S;
const NS_PER_H: u128 = 60 * NS_PER_M;
const NS_PER_D: u128 = 24 * NS_PER_H;

/// A signed length of time, in nanoseconds.
///
/// Written as in Loki, which accepts both Prometheus durations (`1d12h`, `2w`, `1y`:
/// whole numbers, units `y w d h m s ms` in that order, each at most once) and Go
/// durations (`1.5s`, `1h30m`, `250us`: fractions allowed, units `h m s ms us µs ns`);
/// a year is 365 days, a week 7.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration {
    nanos: i64,
}

impl Duration {
    /// The duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: i64) -> Self {
        Duration { nanos }
    }

    /// The duration in nanoseconds.
    pub const fn as_nanos(self) -> i64 {
        self.nanos
    }

    /// Parses a duration such as `5m`, `1h30m`, `1.5s` or `-2d`.
    ///
    /// # Errors
    ///
    /// The reason, as a short phrase, when `text` is not a duration or does not fit
    /// in 64-bit nanoseconds.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let magnitude = i128::from(parse_duration_magnitude(body)?);
        let nanos = if negative { -magnitude } else { magnitude };
        i64::try_from(nanos)
            .map(Duration::from_nanos)
            .map_err(|_| "too long for 64-bit nanoseconds".to_string())
    }
}

/// The nanoseconds of an unsigned duration (no sign in `text`).
pub(crate) fn parse_duration_magnitude(text: &str) -> Result<u64, String> {
    if text == "0" {
        return Ok(0);
    }
    let parts = split_number_unit(text)?;
    let nanos = if is_prometheus_style(&parts) {
        sum_parts(&parts, prometheus_unit)?
    } else {
        for part in &parts {
            if go_unit(part.unit).is_none() {
                return Err(match prometheus_unit(part.unit) {
                    Some(_) if part.frac.is_some() => {
                        format!("a fraction of \"{}\" (only h, m, s, ms, us, ns)", part.unit)
                    }
                    Some(_) => "units out of order or repeated".to_string(),
                    None => format!("unknown unit \"{}\"", part.unit),
                });
            }
        }
        sum_parts(&parts, go_unit)?
    };
    u64::try_from(nanos).map_err(|_| "too long for 64-bit nanoseconds".to_string())
}

/// One `<number><unit>` of a duration such as `1h30m`.
struct Part<'a> {
    int: &'a str,
    frac: Option<&'a str>,
    unit: &'a str,
}

fn split_number_unit(text: &str) -> Result<Vec<Part<'_>>, String> {
    if text.is_empty() {
        return Err("empty".to_string());
    }
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(f) => {
                let len = f.find(|c: char| !c.is_ascii_digit()).unwrap_or(f.len());
                (Some(&f[..len]), &f[len..])
            }
            None => (None, after),
        };
        if int.is_empty() && matches!(frac, None | Some("")) {
            return Err("expected a number".to_string());
        }
        let unit_len = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err("missing unit".to_string());
        }
        parts.push(Part { int, frac, unit });
        rest = after;
    }
    Ok(parts)
}

fn prometheus_unit(unit: &str) -> Option<u128> {
    Some(match unit {
        "y" => 365 * NS_PER_D,
        "w" => 7 * NS_PER_D,
        "d" => NS_PER_D,
        "h" => NS_PER_H,
        "m" => NS_PER_M,
        "s" => NS_PER_S,
        "ms" => NS_PER_MS,
        _ => return None,
    })
}

fn go_unit(unit: &str) -> Option<u128> {
    Some(match unit {
        "h" => NS_PER_H,
        "m" => NS_PER_M,
        "s" => NS_PER_S,
        "ms" => NS_PER_MS,
        "us" | "µs" | "μs" => 1_000,
        "ns" => 1,
        _ => return None,
    })
}

/// Whole numbers with Prometheus units in strictly decreasing order.
fn is_prometheus_style(parts: &[Part<'_>]) -> bool {
    let mut last = u128::MAX;
    parts.iter().all(|p| {
        let ok = p.frac.is_none()
            && !p.int.is_empty()
            && prometheus_unit(p.unit).is_some_and(|u| u < last);
        last = prometheus_unit(p.unit).unwrap_or(0);
        ok
    })
}

/// The total in nanoseconds; a fraction of a nanosecond is dropped, as Go does.
fn sum_parts(parts: &[Part<'_>], unit_of: fn(&str) -> Option<u128>) -> Result<u128, String> {
    const LIMIT: u128 = u64::MAX as u128;
    let too_long = || "too long for 64-bit nanoseconds".to_string();
    let mut total: u128 = 0;
    for part in parts {
        let unit = unit_of(part.unit).ok_or_else(|| format!("unknown unit \"{}\"", part.unit))?;
        let int = parse_digits(part.int).ok_or_else(too_long)?;
        let mut nanos = int.checked_mul(unit).ok_or_else(too_long)?;
        if let Some(frac) = part.frac {
            nanos += fraction_of(frac, unit);
        }
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= LIMIT)
            .ok_or_else(too_long)?;
    }
    Ok(total)
}

/// The value of decimal digits, `None` past `u64::MAX` (empty is zero).
fn parse_digits(digits: &str) -> Option<u128> {
    digits.bytes().try_fold(0u128, |acc, b| {
        let v = acc * 10 + u128::from(b - b'0');
        (v <= u128::from(u64::MAX)).then_some(v)
    })
}

/// `0.<frac>` times `unit`, rounded down. Digits past the 20th cannot change the
/// result for a unit below 10^20, so they are ignored.
fn fraction_of(frac: &str, unit: u128) -> u128 {
    let digits = &frac.as_bytes()[..frac.len().min(20)];
    let mut num: u128 = 0;
    let mut den: u128 = 1;
    for b in digits {
        num = num * 10 + u128::from(b - b'0');
        den *= 10;
    }
    num * unit / den
}

impl fmt::Display for Duration {
    /// Prometheus style (`1d2h30m`) when the duration is a whole number of
    /// milliseconds, Go style (`26h3us500ns`, no days) otherwise; zero is `0s`. Both
    /// parse back to the same duration.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.nanos == 0 {
            return f.write_str("0s");
        }
        if self.nanos < 0 {
            f.write_str("-")?;
        }
        let mut rest = u128::from(self.nanos.unsigned_abs());
        let units: &[(u128, &str)] = if rest % NS_PER_MS == 0 {
            &[
                (NS_PER_D, "d"),
                (NS_PER_H, "h"),
                (NS_PER_M, "m"),
                (NS_PER_S, "s"),
                (NS_PER_MS, "ms"),
            ]
        } else {
            &[
                (NS_PER_H, "h"),
                (NS_PER_M, "m"),
                (NS_PER_S, "s"),
                (NS_PER_MS, "ms"),
                (1_000, "us"),
                (1, "ns"),
            ]
        };
        for (size, name) in units {
            let count = rest / size;
            if count > 0 {
                write!(f, "{count}{name}")?;
                rest %= size;
            }
        }
        Ok(())
    }
}

/// A size in bytes, written as in Loki (go-humanize): a number, possibly with a
/// fraction, and a unit `B`, `kB`/`KB` (1000), `KiB` (1024), `MB`, `MiB`, `GB`, `GiB`,
/// `TB`, `TiB`, `PB`, `PiB`; the final `B` may be left out (`20K`, `1Mi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Bytes(pub u64);

impl Bytes {
    /// Parses a size such as `20KB`, `1.5MiB` or `512B`.
    ///
    /// # Errors
    ///
    /// The reason, as a short phrase, when `text` is not a byte size or does not fit
    /// in 64 bits. A fraction of a byte is dropped.
    pub fn parse(text: &str) -> Result<Bytes, String> {
        let num_len = text
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len());
        let (number, unit) = text.split_at(num_len);
        let (int, frac) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err("expected a number".to_string());
        }
        let multiplier = bytes_unit(unit).ok_or_else(|| format!("unknown unit \"{unit}\""))?;
        let too_big = || "too large for 64 bits".to_string();
        let int = parse_digits(int).ok_or_else(too_big)?;
        let total = int
            .checked_mul(multiplier)
            .map(|n| n + fraction_of(frac, multiplier))
            .filter(|n| *n <= u128::from(u64::MAX))
            .ok_or_else(too_big)?;
        u64::try_from(total).map(Bytes).map_err(|_| too_big())
    }
}

/// The size of a unit; `None` for anything else (including no unit).
fn bytes_unit(unit: &str) -> Option<u128> {
    if unit == "B" {
        return Some(1);
    }
    let mut chars = unit.chars();
    let power = match chars.next()? {
        'k' | 'K' => 1,
        'M' => 2,
        'G' => 3,
        'T' => 4,
        'P' => 5,
        _ => return None,
    };
    let rest = chars.as_str();
    let base: u128 = match rest {
        "" | "B" => 1000,
        "i" | "iB" => 1024,
        _ => return None,
    };
    Some(base.pow(power))
}

impl fmt::Display for Bytes {
    /// The largest binary unit (`KiB`…`PiB`) that divides the size exactly, else the
    /// largest decimal one (`kB`…`PB`), else `B`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = u128::from(self.0);
        if n != 0 {
            for (base, names) in [
                (1024u128, ["KiB", "MiB", "GiB", "TiB", "PiB"]),
                (1000u128, ["kB", "MB", "GB", "TB", "PB"]),
            ] {
                for (power, name) in (1u32..6).zip(names).rev() {
                    let size = base.pow(power);
                    if n % size == 0 {
                        return write!(f, "{}{name}", n / size);
                    }
                }
            }
        }
        write!(f, "{n}B")
    }
}
