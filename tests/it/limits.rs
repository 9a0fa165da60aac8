//! Per-tenant rate limits: over ten seconds a limited tenant gets its rate (and
//! one second's burst) within 10%, the rest refused whole with 429 and
//! `Retry-After`; another tenant is not held back; a request larger than a
//! second's worth is a 413.

use std::time::{Duration, Instant};

use chute::config::TenantLimits;
use serde_json::json;

use crate::helpers::*;

async fn post(app: &TestApp, tenant: &str, n: usize) -> Answer {
    let body: String = (0..n)
        .map(|i| json!({"message": format!("m {i}")}).to_string() + "\n")
        .collect();
    app.post(
        body,
        &[
            ("content-type", "application/x-ndjson"),
            ("x-chute-tenant", tenant),
        ],
    )
    .await
}

#[actix_web::test]
async fn a_tenant_gets_its_rate_within_ten_percent_and_no_more() {
    const RATE: u32 = 500;
    let app = spawn_app_with(|c| {
        c.limits.tenants = vec![TenantLimits {
            tenant: "acme".into(),
            records_per_s: RATE,
            bytes_per_s: 0,
        }]
    })
    .await;
    let started = Instant::now();
    let window = Duration::from_secs(10);
    let senders = (0..4).map(|_| async {
        let (mut accepted, mut limited, mut retry_after) = (0usize, 0usize, None);
        while started.elapsed() < window {
            let a = post(&app, "acme", 25).await;
            match a.status {
                200 => accepted += 25,
                429 => {
                    limited += 1;
                    retry_after = a.retry_after.clone();
                    actix_web::rt::time::sleep(Duration::from_millis(5)).await;
                }
                other => panic!("{other}: {}", a.body),
            }
        }
        (accepted, limited, retry_after)
    });
    let results = futures_util::future::join_all(senders).await;
    let accepted: usize = results.iter().map(|r| r.0).sum();
    let limited: usize = results.iter().map(|r| r.1).sum();
    // Ten seconds at the rate, plus the one second's worth the bucket starts with.
    let expected = RATE as f64 * 11.0;
    eprintln!(
        "accepted {accepted} records in 10 s ({expected} expected), {limited} requests limited"
    );
    assert!(
        (accepted as f64 - expected).abs() <= expected * 0.1,
        "accepted {accepted}, expected {expected} within 10%"
    );
    assert!(limited > 0);
    let retry: u64 = results
        .iter()
        .find_map(|r| r.2.clone())
        .expect("a 429 says when to retry")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    assert_eq!(
        app.metric(
            "chute_rate_limited_total",
            &["tenant=\"acme\"", "limit=\"records\""]
        ),
        limited as f64
    );
    // Each refused record counted, as each received one is.
    assert_eq!(
        app.metric(
            "chute_records_rejected_total",
            &["source=\"http\"", "reason=\"rate_limited\""]
        ),
        (limited * 25) as f64
    );
    // Another tenant is not held back; a request over a second's worth never fits.
    for _ in 0..5 {
        assert_eq!(post(&app, "beta", 200).await.status, 200);
    }
    let too_big = post(&app, "acme", RATE as usize + 1).await;
    assert_eq!(too_big.status, 413, "{}", too_big.body);
    app.settle().await;
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.logs WHERE tenant = 'acme'")
            .await,
        accepted as i64,
        "what was refused was not stored"
    );
    app.stop().await;
}
