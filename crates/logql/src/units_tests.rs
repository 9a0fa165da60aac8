//! Durations and byte sizes: parsing as Loki does, printing back exactly.

use crate::{Bytes, Duration};

const SECOND: i64 = 1_000_000_000;

#[test]
fn durations_parse_as_in_loki() {
    let ns = |t: &str| Duration::parse(t).map(Duration::as_nanos);
    assert_eq!(ns("0"), Ok(0));
    assert_eq!(ns("5m"), Ok(300 * SECOND));
    assert_eq!(ns("1h30m"), Ok(5400 * SECOND));
    assert_eq!(ns("1.5s"), Ok(1_500_000_000));
    assert_eq!(ns("250ms"), Ok(250_000_000));
    assert_eq!(ns("10us"), Ok(10_000));
    assert_eq!(ns("10µs"), Ok(10_000));
    assert_eq!(ns("7ns"), Ok(7));
    assert_eq!(ns("2d"), Ok(172_800 * SECOND));
    assert_eq!(ns("1w2d"), Ok(9 * 86_400 * SECOND));
    assert_eq!(ns("1y"), Ok(365 * 86_400 * SECOND));
    assert_eq!(ns("1m1h"), Ok(3660 * SECOND), "Go style allows any order");
    assert_eq!(ns("-1h"), Ok(-3600 * SECOND));
    assert!(
        ns("1.5d").is_err(),
        "days are Prometheus style: whole numbers"
    );
    assert!(ns("1d1w").is_err(), "Prometheus units go largest first");
    assert!(ns("5x").is_err());
    assert!(ns("5").is_err());
    assert!(ns("").is_err());
    assert!(ns("300y").is_err(), "beyond 64-bit nanoseconds");
}

#[test]
fn durations_print_canonically() {
    let show = |ns: i64| Duration::from_nanos(ns).to_string();
    assert_eq!(show(0), "0s");
    assert_eq!(show(90 * SECOND), "1m30s");
    assert_eq!(show(86_400 * SECOND + 1_000_000), "1d1ms");
    assert_eq!(show(-300 * SECOND), "-5m");
    assert_eq!(show(26 * 3600 * SECOND + 3500), "26h3us500ns");
    for ns in [
        1,
        999,
        1_000_001,
        i64::MAX,
        i64::MIN + 1,
        86_400 * SECOND * 400,
    ] {
        assert_eq!(Duration::parse(&show(ns)).map(Duration::as_nanos), Ok(ns));
    }
}

#[test]
fn byte_sizes_parse_and_print() {
    let b = |t: &str| Bytes::parse(t).map(|b| b.0);
    assert_eq!(b("512B"), Ok(512));
    assert_eq!(b("20KB"), Ok(20_000));
    assert_eq!(b("20kB"), Ok(20_000));
    assert_eq!(b("20K"), Ok(20_000));
    assert_eq!(b("1KiB"), Ok(1024));
    assert_eq!(b("1.5MiB"), Ok(1_572_864));
    assert_eq!(b("3MB"), Ok(3_000_000));
    assert_eq!(b("1GiB"), Ok(1 << 30));
    assert_eq!(b("2GB"), Ok(2_000_000_000));
    assert_eq!(b("1TiB"), Ok(1 << 40));
    assert_eq!(b("1TB"), Ok(1_000_000_000_000));
    assert_eq!(b("1PiB"), Ok(1 << 50));
    assert!(b("1XB").is_err());
    assert!(b("KB").is_err());
    assert!(b("99999999PB").is_err());
    assert_eq!(Bytes(0).to_string(), "0B");
    assert_eq!(Bytes(20_000).to_string(), "20kB");
    assert_eq!(Bytes(2048).to_string(), "2KiB");
    assert_eq!(Bytes(1_572_864).to_string(), "1536KiB");
    assert_eq!(Bytes(1001).to_string(), "1001B");
    assert_eq!(
        Bytes::parse(&Bytes(u64::MAX).to_string()),
        Ok(Bytes(u64::MAX))
    );
}
