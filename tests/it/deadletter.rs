//! A peer link never stalls behind a batch its peer refuses for good: the batch
//! becomes a dead letter, the batches behind it arrive, and a replay stores it
//! once at the shard's owner of the day.

use std::time::{Duration, Instant};

use chute::actors::router::shard_index;
use chute::config::ShardKey;
use serde_json::{json, Value};

use crate::cluster::{get_text, record, TestCluster, IDS};
use crate::helpers::*;

/// A host whose stream maps to `shard` of four.
fn host_of(shard: usize) -> String {
    (0..)
        .map(|i| format!("host-{i}"))
        .find(|h| shard_index(&record(h, ""), 4, ShardKey::Stream) == shard)
        .expect("some host maps to every shard")
}

/// Posts `count` records of `host`, named `<tag>-<i>`, as one NDJSON request;
/// the acknowledged names.
async fn post(base: &str, host: &str, tag: &str, count: usize) -> Vec<String> {
    let names: Vec<String> = (0..count).map(|i| format!("{tag}-{i}")).collect();
    let body = names
        .iter()
        .map(|m| {
            json!({"message": m, "host": host, "app": "app", "pad": "p".repeat(60)}).to_string()
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut r = awc::Client::builder()
        .timeout(Duration::from_secs(30))
        .finish()
        .post(format!("{base}/api/v1/logs"))
        .content_type("application/x-ndjson")
        .send_body(body)
        .await
        .expect("answer");
    let text = r.body().await.unwrap_or_default();
    assert_eq!(
        r.status().as_u16(),
        200,
        "{}",
        String::from_utf8_lossy(&text)
    );
    names
}

fn chute(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chute"))
        .args(args)
        .output()
        .expect("chute runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[actix_web::test]
async fn a_batch_refused_for_good_becomes_a_dead_letter_the_rest_arrive_and_a_replay_stores_it_once(
) {
    // Small peer entries on a, so one request's records make several entries.
    let mut cluster = TestCluster::start(["batch_bytes = 65536", "", ""]).await;
    let (one, two) = (host_of(1), host_of(2));
    // b is down: what a takes for b's shard 1 waits in a's queue for b.
    cluster.stop_node(1);
    let bases = cluster.bases();
    let mut refused = Vec::new();
    for r in 0..3 {
        refused.extend(post(&bases[0], &one, &format!("moved-{r}"), 1500).await);
    }
    // The layout changes under them: shard 1 goes to c, shard 2 to b. b no longer
    // owns what waits for it.
    cluster.stop_node(0);
    cluster.stop_node(2);
    cluster.set_owner(1, 2);
    cluster.set_owner(2, 1);
    for i in 0..3 {
        cluster.start_node(i);
    }
    // Behind the refused entries, in the same queue: records for b's new shard 2.
    let behind = post(&bases[0], &two, "behind", 500).await;
    cluster.settle().await;
    let shard_dsn = |s: usize| std::slice::from_ref(&cluster.dsns[s]).to_vec();
    assert_exactly_once_in(&shard_dsn(2), &behind).await;
    assert_eq!(
        count_rows(&cluster.dsns[1]).await,
        0,
        "nothing stored in shard 1 yet"
    );

    // Counted, shown and listed, each entry apart.
    let metrics = cluster.metrics(0).await;
    let moved = metric_in(
        &metrics,
        "chute_deadletter_moved_total",
        &["peer=\"b\"", "reason=\"shard_not_owned\""],
    );
    assert!(
        moved > 3.0,
        "3 requests split into several entries each, {moved} dead letters"
    );
    assert_eq!(
        metric_in(&metrics, "chute_deadletter_entries", &["peer=\"b\""]),
        moved
    );
    let view: Value =
        serde_json::from_str(&get_text(&format!("{}/api/v1/cluster", bases[0])).await).unwrap();
    let b = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "b")
        .unwrap();
    assert_eq!(b["dead_letters"].as_f64(), Some(moved), "{view}");
    let (ok, text) = chute(&["cluster", "--url", &bases[0]]);
    assert!(
        ok && text.contains(&format!("{moved} dead letters")),
        "{text}"
    );
    let (ok, text) = chute(&["deadletter", "list", "--url", &bases[0], "--json"]);
    assert!(ok, "{text}");
    let listed: Value = serde_json::from_str(&text).unwrap();
    let entries = listed["entries"].as_array().unwrap();
    assert_eq!(entries.len() as f64, moved);
    assert!(entries
        .iter()
        .all(|e| e["reason"] == "shard_not_owned" && e["shard"] == 1 && e["peer"] == "b"));
    let records: u64 = entries.iter().map(|e| e["records"].as_u64().unwrap()).sum();
    assert_eq!(
        records as usize,
        refused.len(),
        "every refused record is in a dead letter"
    );

    // Keep a copy of one, to replay it a second time later.
    let dl_dir = cluster
        .dir
        .path()
        .join(format!("data-{}/deadletter/b", IDS[0]));
    let kept = std::fs::read_dir(&dl_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "dead"))
        .unwrap();
    let kept_bytes = std::fs::read(&kept).unwrap();

    // The cause is fixed (every node knows shard 1 is c's): replay stores them at c.
    let (ok, text) = chute(&["deadletter", "replay", "--all", "--url", &bases[0]]);
    assert!(
        ok && text.contains(&format!("{moved} dead letters replayed")),
        "{text}"
    );
    cluster.settle().await;
    let mut all = refused.clone();
    all.extend(behind.iter().cloned());
    assert_exactly_once_in(&cluster.dsns, &all).await;
    assert_eq!(count_rows(&cluster.dsns[1]).await as usize, refused.len());
    let metrics = cluster.metrics(0).await;
    assert_eq!(
        metric_in(&metrics, "chute_deadletter_entries", &["peer=\"b\""]),
        0.0
    );
    assert_eq!(
        metric_in(
            &metrics,
            "chute_deadletter_removed_total",
            &["peer=\"b\"", "action=\"replayed\""]
        ),
        moved
    );

    // Replayed again (a copy left behind by a replay cut short): stored once still.
    std::fs::write(&kept, kept_bytes).unwrap();
    let (ok, text) = chute(&["deadletter", "replay", "--all", "--url", &bases[0]]);
    assert!(ok && text.contains("1 dead letters replayed"), "{text}");
    cluster.settle().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric_in(
        &cluster.metrics(2).await,
        "chute_duplicate_batches_total",
        &[],
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "c never saw the second replay as a duplicate"
        );
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    }
    assert_exactly_once_in(&cluster.dsns, &all).await;

    // Only from the node's own host; unknown ids change nothing.
    let (ok, text) = chute(&[
        "deadletter",
        "drop",
        "b/00000000000000000001",
        "--url",
        &bases[0],
    ]);
    assert!(!ok && text.contains("404"), "{text}");
}
