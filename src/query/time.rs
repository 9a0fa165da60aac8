//! The time parameters of the Loki API: `start`, `end` and `time` as nanoseconds,
//! seconds (with a fraction) or RFC 3339; `step` and `interval` as a duration
//! (`250ms`, `1m30s`) or seconds (`15`, `0.5`).

use chrono::{DateTime, Utc};

/// A parameter that is not a time or a duration; the message names it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {param} {value:?}: {why}")]
pub struct TimeError {
    pub param: &'static str,
    pub value: String,
    pub why: &'static str,
}

/// Nanoseconds since the epoch in a time stamp.
pub fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt()
        .unwrap_or_else(|| t.timestamp_micros().saturating_mul(1000))
}

/// The time stamp `ns` nanoseconds after the epoch.
pub fn from_nanos(ns: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_nanos(ns)
}

/// A point in time as Loki takes it: an integer of 13 or more digits is
/// nanoseconds (Loki's own rule; Grafana sends nanoseconds), a shorter one or a
/// number with a fraction is seconds, anything else RFC 3339.
///
/// # Errors
/// Text that is none of these.
pub fn parse_time(param: &'static str, value: &str) -> Result<DateTime<Utc>, TimeError> {
    let err = |why| TimeError {
        param,
        value: value.to_owned(),
        why,
    };
    let v = value.trim();
    if let Ok(n) = v.parse::<i64>() {
        let digits = v.trim_start_matches('-').len();
        return Ok(if digits >= 13 {
            from_nanos(n)
        } else {
            DateTime::from_timestamp(n, 0).ok_or_else(|| err("out of range"))?
        });
    }
    if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs.abs() > 9.2e9 {
            return Err(err("out of range"));
        }
        return Ok(from_nanos((secs * 1e9).round() as i64));
    }
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| err("expected nanoseconds, seconds or RFC 3339"))
}

/// A duration as Loki takes `step` and `interval`: seconds (`15`, `0.5`) or a
/// LogQL duration (`250ms`, `1m30s`); at least 1 ms.
///
/// # Errors
/// Text that is neither, or a duration under 1 ms.
pub fn parse_step(param: &'static str, value: &str) -> Result<i64, TimeError> {
    let err = |why| TimeError {
        param,
        value: value.to_owned(),
        why,
    };
    let v = value.trim();
    let ns = if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs > 3.2e7 {
            return Err(err("out of range"));
        }
        (secs * 1e9).round() as i64
    } else {
        chute_logql::Duration::parse(v)
            .map(|d| d.as_nanos())
            .map_err(|_| err("expected seconds or a duration such as 30s"))?
    };
    if ns < 1_000_000 {
        return Err(err("must be at least 1ms"));
    }
    Ok(ns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_as_nanoseconds_seconds_or_rfc3339() {
        let t = DateTime::parse_from_rfc3339("2026-12-02T01:00:00.5Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_time("start", "1796173200500000000").unwrap(), t);
        assert_eq!(parse_time("start", "1796173200.5").unwrap(), t);
        assert_eq!(parse_time("start", "2026-12-02T01:00:00.5Z").unwrap(), t);
        assert_eq!(
            parse_time("start", "1796173200").unwrap(),
            t - chrono::Duration::milliseconds(500)
        );
        let e = parse_time("end", "yesterday").unwrap_err();
        assert_eq!(e.param, "end");
        assert!(parse_time("end", "1e300").is_err());
    }

    #[test]
    fn steps_are_seconds_or_durations_of_at_least_a_millisecond() {
        assert_eq!(parse_step("step", "15").unwrap(), 15_000_000_000);
        assert_eq!(parse_step("step", "0.5").unwrap(), 500_000_000);
        assert_eq!(parse_step("step", "2000ms").unwrap(), 2_000_000_000);
        assert_eq!(parse_step("step", "1m30s").unwrap(), 90_000_000_000);
        assert!(parse_step("step", "0").is_err());
        assert!(parse_step("step", "soon").is_err());
    }
}
