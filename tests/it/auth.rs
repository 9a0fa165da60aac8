//! Tokens: with `[[tokens]]`, ingest and queries need one (Bearer or Basic), the
//! tenant comes from the token, other tenants are refused, and every refusal is a
//! 401 or 403 with a JSON body, counted by reason; idempotency keys are the
//! sender's own; the operator's endpoints follow `http.ops_access`.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine;
use chute::config::tokens::{digest, hex, new_token};
use chute::config::{OpsAccess, Scope, TokenConfig};
use serde_json::{json, Value};

use crate::helpers::*;
use crate::query::get;

/// A token made by `chute token new`, and its `[[tokens]]` entry as the command
/// printed it.
fn token_from_cli(tenants: &str, scopes: &str, name: &str) -> (String, TokenConfig) {
    let out = Command::new(env!("CARGO_BIN_EXE_chute"))
        .args([
            "token", "new", "--tenant", tenants, "--scope", scopes, "--name", name,
        ])
        .output()
        .expect("chute runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let token = text
        .lines()
        .find(|l| l.starts_with("chute_"))
        .expect("the token")
        .to_owned();
    let toml_part = &text[text.find("[[tokens]]").expect("the entry")..];
    #[derive(serde::Deserialize)]
    struct File {
        tokens: Vec<TokenConfig>,
    }
    let file: File = toml::from_str(toml_part).expect("valid TOML");
    assert!(!toml_part.contains(&token), "only the hash is configured");
    (token, file.tokens.into_iter().next().unwrap())
}

fn entry(name: &str, token: &str, tenants: &[&str], scopes: &[Scope]) -> TokenConfig {
    TokenConfig {
        name: name.into(),
        sha256: hex(&digest(token)),
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        scopes: scopes.to_vec(),
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

async fn send(app: &TestApp, auth: Option<&str>, tenant: Option<&str>, message: &str) -> Answer {
    send_keyed(app, auth, tenant, message, None).await
}

async fn send_keyed(
    app: &TestApp,
    auth: Option<&str>,
    tenant: Option<&str>,
    message: &str,
    key: Option<&str>,
) -> Answer {
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    if let Some(t) = tenant {
        headers.push(("x-chute-tenant", t));
    }
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    app.post(json!([{"message": message}]).to_string(), &headers)
        .await
}

/// The messages a query with these headers sees, or its status and body.
async fn read(app: &TestApp, auth: Option<&str>, tenant: Option<&str>) -> (u16, Value) {
    let mut headers = Vec::new();
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    if let Some(t) = tenant {
        headers.push(("x-scope-orgid", t));
    }
    get(
        app,
        "/loki/api/v1/query_range",
        &[("query", r#"{app=""}"#.into()), ("limit", "100".into())],
        &headers,
    )
    .await
}

fn messages(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["values"].as_array().unwrap().iter())
        .map(|e| e[1].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn refused(app: &TestApp, reason: &str) -> f64 {
    app.metric(
        "chute_auth_refused_total",
        &[&format!("reason=\"{reason}\"")],
    )
}

#[actix_web::test]
async fn a_token_writes_and_reads_only_its_tenants_and_every_refusal_is_counted() {
    let (acme_in, acme_in_entry) = token_from_cli("acme", "ingest", "acme-in");
    let acme_read = new_token().unwrap();
    let beta = new_token().unwrap();
    let both = new_token().unwrap();
    let reader = new_token().unwrap();
    let app = spawn_app_with(|c| {
        c.tokens = vec![
            acme_in_entry,
            entry("acme-read", &acme_read, &["acme"], &[Scope::Query]),
            entry("beta", &beta, &["beta"], &[Scope::Ingest, Scope::Query]),
            entry("both", &both, &["acme", "beta"], &[Scope::Ingest]),
            entry("reader", &reader, &["acme", "beta"], &[Scope::Query]),
        ]
    })
    .await;

    // Refusals: 401 without a token, with an unknown one or unreadable credentials.
    let a = send(&app, None, None, "x").await;
    assert_eq!(
        (a.status, a.body["reason"].as_str()),
        (401, Some("missing_token"))
    );
    assert!(a.body["error"].as_str().unwrap().contains("Bearer"));
    let a = send(&app, Some(&bearer("chute_nope")), None, "x").await;
    assert_eq!(
        (a.status, a.body["reason"].as_str()),
        (401, Some("unknown_token"))
    );
    let a = send(&app, Some("Digest x"), None, "x").await;
    assert_eq!(
        (a.status, a.body["reason"].as_str()),
        (401, Some("malformed_credentials"))
    );
    // 403 for a tenant or a scope the token lacks.
    let a = send(&app, Some(&bearer(&acme_in)), Some("beta"), "x").await;
    assert_eq!((a.status, a.body["reason"].as_str()), (403, Some("tenant")));
    let a = send(&app, Some(&bearer(&acme_read)), None, "x").await;
    assert_eq!((a.status, a.body["reason"].as_str()), (403, Some("scope")));
    for (reason, n) in [
        ("missing_token", 1.0),
        ("unknown_token", 1.0),
        ("malformed_credentials", 1.0),
        ("tenant", 1.0),
        ("scope", 1.0),
    ] {
        assert_eq!(refused(&app, reason), n, "{reason}");
    }

    // Accepted: Bearer, and Basic with the token as the password (as Promtail sends).
    assert_eq!(
        send(&app, Some(&bearer(&acme_in)), None, "a1").await.status,
        200
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("promtail:{acme_in}"))
    );
    assert_eq!(
        send(&app, Some(&basic), Some("acme"), "a2").await.status,
        200
    );
    assert_eq!(
        send(&app, Some(&bearer(&beta)), None, "b1").await.status,
        200
    );
    // A token of two tenants: its first without a header, the other by name.
    assert_eq!(
        send(&app, Some(&bearer(&both)), None, "a3").await.status,
        200
    );
    assert_eq!(
        send(&app, Some(&bearer(&both)), Some("beta"), "b2")
            .await
            .status,
        200
    );
    app.settle().await;
    let by_tenant = app
        .db
        .query(
            "SELECT tenant || ':' || message FROM chute.logs ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect::<Vec<_>>();
    assert_eq!(
        by_tenant,
        ["acme:a1", "acme:a2", "acme:a3", "beta:b1", "beta:b2"]
    );

    // Reading: only the token's tenants.
    let (status, v) = read(&app, Some(&bearer(&acme_read)), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(messages(&v), ["a1", "a2", "a3"]);
    let (status, v) = read(&app, Some(&bearer(&beta)), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(messages(&v), ["b1", "b2"]);
    let (status, v) = read(&app, Some(&bearer(&acme_read)), Some("beta")).await;
    assert_eq!(
        (status, v["errorType"].as_str()),
        (403, Some("forbidden")),
        "{v}"
    );
    // Several tenants at once (Loki's `a|b`), for a token that has them all.
    let (status, v) = read(&app, Some(&bearer(&reader)), Some("acme|beta")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(messages(&v), ["a1", "a2", "a3", "b1", "b2"]);
    let (status, v) = get(
        &app,
        "/loki/api/v1/label/tenant/values",
        &[],
        &[
            ("authorization", &bearer(&reader)),
            ("x-scope-orgid", "acme|beta"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["data"], json!(["acme", "beta"]));
    let (status, _) = read(&app, Some(&bearer(&acme_read)), Some("acme|beta")).await;
    assert_eq!(
        status, 403,
        "one tenant the token lacks refuses the whole query"
    );
    let (status, v) = read(&app, None, None).await;
    assert_eq!(
        (status, v["errorType"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    let (status, _) = read(&app, Some(&bearer(&acme_in)), None).await;
    assert_eq!(status, 403, "an ingest token does not read");
    assert_eq!(
        app.metric(
            "chute_queries_total",
            &["endpoint=\"query_range\"", "result=\"forbidden\""]
        ),
        3.0
    );
    // The tail refuses the same way before the upgrade.
    let (status, _) = app.get("/loki/api/v1/tail?query=%7Bapp%3D%22%22%7D").await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[actix_web::test]
async fn an_idempotency_key_belongs_to_the_token_that_sent_it() {
    let (a, b) = (new_token().unwrap(), new_token().unwrap());
    let app = spawn_app_with(|c| {
        c.tokens = vec![
            entry("a", &a, &["acme"], &[Scope::Ingest]),
            entry("b", &b, &["acme"], &[Scope::Ingest]),
        ]
    })
    .await;
    let k = Some("batch-0001");
    assert_eq!(
        send_keyed(&app, Some(&bearer(&a)), None, "from a", k)
            .await
            .status,
        200
    );
    // The same key again from a: the retry it is, stored once.
    assert_eq!(
        send_keyed(&app, Some(&bearer(&a)), None, "from a", k)
            .await
            .status,
        200
    );
    // The same key from another token of the same tenant: its own records.
    assert_eq!(
        send_keyed(&app, Some(&bearer(&b)), None, "from b", k)
            .await
            .status,
        200
    );
    app.settle().await;
    let rows: Vec<String> = app
        .db
        .query("SELECT message FROM chute.logs ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(rows, ["from a", "from b"]);
    app.stop().await;
}

#[actix_web::test]
async fn the_operators_endpoints_follow_ops_access() {
    let (admin, reader) = (new_token().unwrap(), new_token().unwrap());
    let tokens = vec![
        entry("admin", &admin, &["*"], &[Scope::Admin]),
        entry("reader", &reader, &["acme"], &[Scope::Query]),
    ];
    let app = spawn_app_with(|c| {
        c.tokens = tokens.clone();
        c.http.ops_access = OpsAccess::Token;
    })
    .await;
    let ask = |path: &'static str, token: Option<String>| {
        let http = app.http.clone();
        let url = format!("{}{path}", app.base);
        async move {
            let mut req = http.get(url);
            if let Some(t) = token {
                req = req.insert_header(("authorization", bearer(&t)));
            }
            let mut res = req.send().await.expect("answer");
            let body = res.body().await.expect("body");
            (
                res.status().as_u16(),
                String::from_utf8_lossy(&body).into_owned(),
            )
        }
    };
    assert_eq!(ask("/metrics", None).await.0, 401);
    assert_eq!(ask("/metrics", Some(reader.clone())).await.0, 403);
    let (status, text) = ask("/metrics", Some(admin.clone())).await;
    assert_eq!(status, 200);
    assert!(text.contains("chute_auth_refused_total"));
    assert_eq!(ask("/api/v1/cluster", None).await.0, 401);
    assert_eq!(ask("/api/v1/cluster", Some(admin.clone())).await.0, 200);
    // Readiness says only whether, without the admin token; and refuses nobody.
    let (status, body) = ask("/readyz", None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"ready":true}"#));
    let (status, body) = ask("/readyz", Some(admin.clone())).await;
    assert_eq!(status, 200);
    assert!(body.contains("\"shards\""), "{body}");
    assert_eq!(ask("/healthz", None).await.0, 200);
    app.stop().await;

    // The default (`loopback`): open to this host.
    let app = spawn_app_with(|c| c.tokens = tokens).await;
    let (status, _) = app.get("/metrics").await;
    assert_eq!(status, 200);
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200);
    assert!(body.contains("\"shards\""), "{body}");
    app.stop().await;
}

#[test]
fn validate_warns_of_an_open_listener_beyond_loopback() {
    let dir = temp_dir();
    let file = dir.path().join("chute.toml");
    let validate = |text: &str| {
        std::fs::write(&file, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_chute"))
            .args(["validate", "--config"])
            .arg(&file)
            .output()
            .expect("chute runs");
        assert!(out.status.success());
        String::from_utf8(out.stderr).unwrap()
    };
    let open = validate("[http]\nlisten = \"0.0.0.0:7280\"\n");
    assert!(
        open.contains("warning: http.listen 0.0.0.0:7280 is reachable"),
        "{open}"
    );
    assert!(validate("[http]\nlisten = \"127.0.0.1:7280\"\n").is_empty());
    let token = new_token().unwrap();
    let with_token = format!(
        "[http]\nlisten = \"0.0.0.0:7280\"\n\n[[tokens]]\nname = \"t\"\nsha256 = \"{}\"\n\
         tenants = [\"acme\"]\nscopes = [\"ingest\"]\n",
        hex(&digest(&token))
    );
    assert!(validate(&with_token).is_empty());
}

/// Secrets never reach the log, `chute validate` or an error body: a token (good
/// or bad, Bearer or Basic), the DSN's password and a password file's content.
#[actix_web::test]
async fn secrets_appear_in_no_log_no_validate_output_and_no_error_body() {
    let dir = temp_dir();
    let token = new_token().unwrap();
    let wrong = "chute_wrong-secret-4d1f9a";
    let dsn_password = "dsn-secret-8c2e";
    let file_password = "file-secret-51b7";
    let password_file = dir.path().join("pg.pass");
    std::fs::write(&password_file, format!("{file_password}\n")).unwrap();
    let dsn = format!("{} password={dsn_password}", fresh_database().await);
    let extra = format!(
        "[[tokens]]\nname = \"fleet\"\nsha256 = \"{}\"\ntenants = [\"acme\"]\nscopes = [\"ingest\"]\n",
        hex(&digest(&token))
    );
    let config = write_config(dir.path(), &dir.path().join("data"), &dsn, &extra);
    // The shard's password file, after the [[shards]] table the helper ends with.
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "password_file = \"{}\"\n",
        password_file.display()
    ));
    std::fs::write(&config, text).unwrap();

    let daemon = Daemon::start(&config, dir.path().join("chute.log"));
    let base = daemon.base();
    let client = awc::Client::default();
    let mut bodies = String::new();
    let basic = |secret: &str| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("agent:{secret}"))
        )
    };
    for auth in [
        bearer(&token),
        bearer(wrong),
        basic(wrong),
        format!("Digest {wrong}"),
    ] {
        for tenant in ["acme", "other"] {
            let mut r = client
                .post(format!("{base}/api/v1/logs"))
                .insert_header(("authorization", auth.as_str()))
                .insert_header(("x-chute-tenant", tenant))
                .insert_header(("content-type", "application/json"))
                .send_body(r#"[{"message": "m"}]"#)
                .await
                .unwrap();
            bodies.push_str(&String::from_utf8_lossy(&r.body().await.unwrap()));
        }
    }
    let validate = Command::new(env!("CARGO_BIN_EXE_chute"))
        .args(["validate", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let validated = format!(
        "{}{}",
        String::from_utf8_lossy(&validate.stdout),
        String::from_utf8_lossy(&validate.stderr)
    );
    let log = daemon.log_text();
    assert!(
        log.contains("request refused"),
        "refusals are logged: {log}"
    );
    assert!(bodies.contains("unknown_token"), "{bodies}");
    for secret in [token.as_str(), wrong, dsn_password, file_password] {
        assert!(!log.contains(secret), "{secret} in the log");
        assert!(!validated.contains(secret), "{secret} in chute validate");
        assert!(!bodies.contains(secret), "{secret} in an answer");
    }
}

#[actix_web::test]
async fn sighup_turns_tokens_on_revokes_one_and_changes_rate_limits_without_a_restart() {
    use nix::sys::signal::Signal;
    let dir = temp_dir();
    let dsn = fresh_database().await;
    let data = dir.path().join("data");
    let config = write_config(dir.path(), &data, &dsn, "");
    let daemon = Daemon::start(&config, dir.path().join("chute.log"));
    let base = daemon.base();
    let client = awc::Client::default();
    let post = |auth: Option<String>| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut req = client
                .post(format!("{base}/api/v1/logs"))
                .content_type("application/json");
            if let Some(auth) = auth {
                req = req.insert_header(("authorization", auth));
            }
            req.send_body(r#"[{"message": "m"}]"#)
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let reloads = || {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let mut r = client.get(format!("{base}/metrics")).send().await.unwrap();
            let text = String::from_utf8_lossy(&r.body().await.unwrap()).into_owned();
            metric_in(&text, "chute_config_reloads_total", &["result=\"applied\""])
        }
    };
    let reload_with = |extra: String| {
        let reloads = &reloads;
        let (config, daemon, data, dsn, dir) = (&config, &daemon, &data, &dsn, dir.path());
        async move {
            let before = reloads().await;
            // The same file, rewritten.
            assert_eq!(&write_config(dir, data, dsn, &extra), config);
            daemon.signal(Signal::SIGHUP);
            let deadline = Instant::now() + Duration::from_secs(20);
            while reloads().await <= before {
                assert!(Instant::now() < deadline, "the reload was not applied");
                actix_web::rt::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let tokens = |token: &str| {
        format!(
            "[[tokens]]\nname = \"agent\"\nsha256 = \"{}\"\ntenants = [\"acme\"]\nscopes = [\"ingest\"]\n",
            hex(&digest(token))
        )
    };
    let (old, new) = (new_token().unwrap(), new_token().unwrap());
    assert_eq!(post(None).await, 200, "open without tokens");

    reload_with(tokens(&old)).await;
    assert_eq!(post(None).await, 401, "tokens are required at once");
    assert_eq!(post(Some(bearer(&old))).await, 200);

    // Revoked: the old token is refused at its next request, the new one admitted.
    reload_with(tokens(&new)).await;
    assert_eq!(post(Some(bearer(&old))).await, 401);
    assert_eq!(post(Some(bearer(&new))).await, 200);

    // A rate limit of one record per second: the second request is refused.
    reload_with(format!("{}[limits]\nrecords_per_s = 1\n", tokens(&new))).await;
    assert_eq!(post(Some(bearer(&new))).await, 200);
    assert_eq!(post(Some(bearer(&new))).await, 429);
    assert!(
        !daemon.log_text().contains("restart chute to apply it"),
        "tokens and limits need no restart"
    );
}
