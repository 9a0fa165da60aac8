use super::*;

/// docs/metrics.md and the registry name exactly the same metrics.
#[test]
fn the_catalogue_lists_exactly_the_exported_metrics() {
    let doc = include_str!("../../docs/metrics.md");
    let mut documented: Vec<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .filter(|n| n.starts_with("chute_") || n.starts_with("process_"))
        .map(str::to_owned)
        .collect();
    documented.sort();
    assert_eq!(documented, Metrics::new().names());
}

/// Every family in a scrape is one the registry knows (histograms add suffixes).
#[test]
fn the_oldest_age_grows_while_nothing_touches_the_queue() {
    let m = Metrics::new();
    let appended = std::time::SystemTime::now() - std::time::Duration::from_secs(90);
    m.set_queue_oldest_append("peer-b", Some(appended));
    // Nothing else happens to the queue; a later scrape still sees it age.
    std::thread::sleep(std::time::Duration::from_millis(50));
    let age = metric_value(&m.render(), "chute_queue_oldest_age_seconds");
    assert!((90.05..100.0).contains(&age), "{age}");
    m.set_queue_oldest_append("peer-b", None);
    assert_eq!(
        metric_value(&m.render(), "chute_queue_oldest_age_seconds"),
        0.0
    );
}

fn metric_value(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn a_scrape_holds_only_registered_families() {
    let m = Metrics::new();
    m.batch_rows.with_label_values(&["0"]).observe(1.0);
    m.rows_written.with_label_values(&["0"]).inc();
    let names = m.names();
    for line in m.render().lines().filter(|l| !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap_or_default();
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|b| names.iter().any(|n| n == b))
            .unwrap_or(name);
        assert!(names.iter().any(|n| n == base), "{name} is not registered");
    }
}
