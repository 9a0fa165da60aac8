//! TLS to PostgreSQL: a real server with `ssl = on` and a test CA. `verify-full`
//! connects (and the connection is encrypted), a wrong CA or a host name the
//! certificate was not issued for fails with a clear error and no plaintext
//! fallback, `verify-ca` accepts any name the CA signed, a client certificate is
//! presented, and chute itself writes through such a shard.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use chute::config::{Secret, ShardConfig};
use chute_embedded_pg::{EmbeddedOptions, EmbeddedPostgres};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde_json::json;

use crate::helpers::*;

struct Ca {
    pem: String,
    cert: rcgen::Certificate,
    key: KeyPair,
}

fn ca() -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "chute test CA");
    let cert = params.self_signed(&key).unwrap();
    Ca {
        pem: cert.pem(),
        cert,
        key,
    }
}

/// A certificate for `names` signed by `ca`: (certificate PEM, key PEM).
fn issue(ca: &Ca, names: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    // Its own subject: OpenSSL takes a certificate whose subject is its issuer's for
    // a self-signed one.
    params.distinguished_name.push(DnType::CommonName, names[0]);
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    path
}

/// PostgreSQL on 127.0.0.1 with TLS: a certificate for `localhost` only, and
/// client certificates checked against the same CA when presented.
fn start_tls_postgres(dir: &Path, ca: &Ca) -> (EmbeddedPostgres, u16) {
    let (cert, key) = issue(ca, &["localhost"]);
    let cert = write(dir, "server.pem", &cert, 0o644);
    let key = write(dir, "server.key", &key, 0o600);
    let ca_file = write(dir, "ca.pem", &ca.pem, 0o644);
    // Run as root, the tests' PostgreSQL runs as `postgres`, which must own its key.
    if nix::unistd::geteuid().is_root() {
        if let Ok(Some(user)) = nix::unistd::User::from_name("postgres") {
            nix::unistd::chown(&key, Some(user.uid), Some(user.gid)).unwrap();
        }
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let setting = |k: &str, v: &Path| (k.to_owned(), v.display().to_string());
    let options = EmbeddedOptions {
        port,
        settings: vec![
            ("listen_addresses".into(), "127.0.0.1".into()),
            ("ssl".into(), "on".into()),
            setting("ssl_cert_file", &cert),
            setting("ssl_key_file", &key),
            setting("ssl_ca_file", &ca_file),
        ],
        ..EmbeddedOptions::default()
    };
    let data = dir.join("pg");
    let pg = std::thread::spawn(move || EmbeddedPostgres::start(&data, options))
        .join()
        .unwrap()
        .expect("PostgreSQL with TLS starts");
    (pg, port)
}

/// Whether this connection is encrypted, and the client certificate's DN it showed.
async fn ssl_of(client: &deadpool_postgres::Object) -> (bool, Option<String>) {
    let row = client
        .query_one(
            "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn connect(dsn: &str) -> Result<deadpool_postgres::Object, String> {
    let pool = chute::sinks::postgres::pool(dsn, None, 1, None).map_err(|e| format!("{e:#}"))?;
    // What chute logs and /readyz shows: the error and its causes.
    pool.get()
        .await
        .map_err(|e| chute::sinks::postgres::error::describe(&e))
}

#[actix_web::test]
async fn verify_full_connects_encrypted_and_a_wrong_ca_or_name_is_refused() {
    let dir = temp_dir();
    let ca = ca();
    let (pg, port) = start_tls_postgres(dir.path(), &ca);
    let ca_file = write(dir.path(), "trusted.pem", &ca.pem, 0o644);
    let other = write(dir.path(), "other.pem", &self::ca().pem, 0o644);
    let base = format!("port={port} user=postgres dbname=postgres connect_timeout=5");
    let dsn = |host: &str, extra: &str| format!("host={host} {base} {extra}");

    // verify-full: the certificate is the CA's and for "localhost".
    let full = dsn(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={}", ca_file.display()),
    );
    let client = connect(&full).await.expect("verify-full connects");
    assert_eq!(ssl_of(&client).await, (true, None));

    // The same by URL, with a client certificate the server sees.
    let (client_cert, client_key) = issue(&ca, &["chute-writer"]);
    let client_cert = write(dir.path(), "client.pem", &client_cert, 0o644);
    let client_key = write(dir.path(), "client.key", &client_key, 0o600);
    let url = format!(
        "postgresql://postgres@localhost:{port}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        ca_file.display(),
        client_cert.display(),
        client_key.display()
    );
    let client = connect(&url)
        .await
        .expect("a client certificate is presented");
    let (ssl, dn) = ssl_of(&client).await;
    assert!(ssl);
    assert!(dn.unwrap_or_default().contains("chute-writer"));

    // A CA that did not sign the server's certificate: refused, clearly.
    let wrong_ca = connect(&dsn(
        "localhost",
        &format!("sslmode=verify-full sslrootcert={}", other.display()),
    ))
    .await
    .map(|_| ())
    .expect_err("a wrong CA is refused");
    assert!(wrong_ca.contains("invalid peer certificate"), "{wrong_ca}");
    // A name the certificate was not issued for: refused by verify-full ...
    let wrong_name = connect(&dsn(
        "127.0.0.1",
        &format!("sslmode=verify-full sslrootcert={}", ca_file.display()),
    ))
    .await
    .map(|_| ())
    .expect_err("a wrong name is refused");
    assert!(
        wrong_name.contains("invalid peer certificate")
            && wrong_name.contains("not valid for name"),
        "{wrong_name}"
    );
    // ... and accepted by verify-ca, which checks the signer only.
    let client = connect(&dsn(
        "127.0.0.1",
        &format!("sslmode=verify-ca sslrootcert={}", ca_file.display()),
    ))
    .await
    .expect("verify-ca connects");
    assert!(ssl_of(&client).await.0);
    // require: encrypted, unchecked; disable: plaintext, as asked.
    let client = connect(&dsn("127.0.0.1", "sslmode=require")).await.unwrap();
    assert!(ssl_of(&client).await.0);
    let client = connect(&dsn("127.0.0.1", "sslmode=disable")).await.unwrap();
    assert!(!ssl_of(&client).await.0);
    // Settings that cannot be honoured are errors, never a weaker connection.
    let err = connect(&dsn("localhost", "sslmode=verify-full"))
        .await
        .err()
        .unwrap();
    assert!(err.contains("needs sslrootcert"), "{err}");
    drop(pg);
}

#[actix_web::test]
async fn chute_writes_through_a_verify_full_shard_with_its_password_from_a_file() {
    let dir = temp_dir();
    let ca = ca();
    let (pg, port) = start_tls_postgres(dir.path(), &ca);
    let ca_file = write(dir.path(), "trusted.pem", &ca.pem, 0o644);
    // The embedded cluster has a `chute` database already.
    let admin = connect(&format!(
        "host=localhost port={port} user=postgres dbname=postgres sslmode=disable"
    ))
    .await
    .unwrap();
    // Trust authentication ignores it, but it must reach the connection unlogged.
    let password = "pw-never-logged-7f3a";
    let password_file = write(dir.path(), "pg.pass", &format!("{password}\n"), 0o600);
    let dsn = format!(
        "host=localhost port={port} user=postgres dbname=chute sslmode=verify-full sslrootcert={}",
        ca_file.display()
    );
    let mut config = test_config(&dsn);
    config.shards = vec![ShardConfig {
        id: 0,
        owner: None,
        dsn: Secret::new(dsn.clone()),
        pool_size: 2,
        password_file: Some(password_file),
        password_env: None,
    }];
    let app = spawn_config(config).await;
    let a = app.post_json(&json!([{"message": "over TLS"}])).await;
    assert_eq!(a.status, 200, "{}", a.body);
    app.settle().await;
    let encrypted = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = 'chute' AND s.ssl AND a.pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert!(encrypted > 0, "chute's connections are encrypted");
    assert_eq!(app.stored().await, 1);
    app.stop().await;
    drop(pg);
}
