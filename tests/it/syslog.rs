//! Syslog with real senders: util-linux `logger`, Python's SysLogHandler, rsyslog
//! forwarding, and a TLS client; plus the limits a bad sender runs into.

use std::io::Write;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use chute::config::{ListenerConfig, Protocol};
use serde_json::Value;

use crate::helpers::*;

pub(crate) fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// chute with the given syslog listeners (ports resolved in `app.syslog`).
pub(crate) async fn with_listeners(listeners: Vec<ListenerConfig>) -> TestApp {
    spawn_app_with(|c| {
        c.syslog.listeners = Some(listeners);
        c.syslog.group_commit_ms = 5;
    })
    .await
}

pub(crate) fn addr_of(app: &TestApp, protocol: Protocol) -> SocketAddr {
    app.syslog
        .iter()
        .find(|b| b.protocol == protocol)
        .and_then(|b| b.addr)
        .expect("listener")
}

/// One stored row as JSON, once a row matching `condition` exists (syslog has no
/// acknowledgement, so the tests wait for the rows).
pub(crate) async fn row_where(app: &TestApp, condition: &str) -> Value {
    let sql = format!("SELECT to_jsonb(l) FROM chute.logs l WHERE {condition}");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(row)) = app.db.query_opt(&sql, &[]).await {
            return row.get(0);
        }
        assert!(Instant::now() < deadline, "no row where {condition}");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("the sender runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hostname() -> String {
    String::from_utf8(Command::new("hostname").output().unwrap().stdout)
        .unwrap()
        .trim()
        .to_owned()
}

#[actix_web::test]
async fn logger_rfc5424_with_structured_data_over_udp_and_tcp() {
    let app = with_listeners(vec![
        ListenerConfig::plain(Protocol::Udp, any_port()),
        ListenerConfig::plain(Protocol::Tcp, any_port()),
    ])
    .await;
    for (flag, addr) in [
        ("--udp", addr_of(&app, Protocol::Udp)),
        ("--tcp", addr_of(&app, Protocol::Tcp)),
    ] {
        run(Command::new("logger")
            .args([
                flag,
                "--server",
                "127.0.0.1",
                "--port",
                &addr.port().to_string(),
            ])
            .args([
                "--rfc5424",
                "-t",
                "myapp",
                "--id=4242",
                "--msgid",
                "MID7",
                "-p",
                "local3.warning",
            ])
            .args([
                "--sd-id",
                "meta@32473",
                "--sd-param",
                "k=\"v w\"",
                "--sd-param",
                "q=\"x\\\"y\"",
            ])
            .arg(format!("hello over {flag}")));
        let row = row_where(&app, &format!("message = 'hello over {flag}'")).await;
        assert_eq!(row["app"], "myapp");
        assert_eq!(row["procid"], "4242");
        assert_eq!(row["msgid"], "MID7");
        assert_eq!(row["severity"], 4);
        assert_eq!(row["facility"], 19);
        assert_eq!(row["host"], hostname());
        assert_eq!(row["fields"]["sd"]["meta@32473"]["k"], "v w");
        assert_eq!(row["fields"]["sd"]["meta@32473"]["q"], "x\"y");
        // logger adds its own timeQuality element
        assert!(row["fields"]["sd"]["timeQuality"].is_object(), "{row}");
        let ts = chrono::DateTime::parse_from_rfc3339(row["ts"].as_str().unwrap()).unwrap();
        assert!(
            (chrono::Utc::now() - ts.with_timezone(&chrono::Utc))
                .num_seconds()
                .abs()
                < 60
        );
    }
    assert_eq!(app.metric("chute_syslog_malformed_total", &[]), 0.0);
    app.stop().await;
}

#[actix_web::test]
async fn logger_rfc3164_over_tcp_with_octet_counting_and_with_newlines() {
    let app = with_listeners(vec![ListenerConfig::plain(Protocol::Tcp, any_port())]).await;
    let port = addr_of(&app, Protocol::Tcp).port().to_string();
    run(Command::new("logger")
        .args([
            "--tcp",
            "--octet-count",
            "--server",
            "127.0.0.1",
            "--port",
            &port,
        ])
        .args([
            "--rfc3164",
            "-t",
            "counted",
            "-p",
            "auth.err",
            "--id=77",
            "octet counted",
        ]));
    run(Command::new("logger")
        .args(["--tcp", "--server", "127.0.0.1", "--port", &port])
        .args([
            "--rfc3164",
            "-t",
            "lined",
            "-p",
            "mail.info",
            "new line framed",
        ]));
    let row = row_where(&app, "message = 'octet counted'").await;
    assert_eq!(
        (row["app"].as_str(), row["procid"].as_str()),
        (Some("counted"), Some("77"))
    );
    assert_eq!(
        (row["severity"].as_i64(), row["facility"].as_i64()),
        (Some(3), Some(4))
    );
    assert_eq!(row["host"], hostname());
    let row = row_where(&app, "message = 'new line framed'").await;
    assert_eq!(row["app"], "lined");
    assert_eq!(
        (row["severity"].as_i64(), row["facility"].as_i64()),
        (Some(6), Some(2))
    );
    let ts = chrono::DateTime::parse_from_rfc3339(row["ts"].as_str().unwrap()).unwrap();
    assert!(
        (chrono::Utc::now() - ts.with_timezone(&chrono::Utc))
            .num_seconds()
            .abs()
            < 60,
        "the year was guessed right"
    );
    app.stop().await;
}

#[actix_web::test]
async fn python_sysloghandler_over_udp_and_tcp() {
    let app = with_listeners(vec![
        ListenerConfig::plain(Protocol::Udp, any_port()),
        ListenerConfig::plain(Protocol::Tcp, any_port()),
    ])
    .await;
    let script = r#"
import logging, logging.handlers, socket, sys
port = int(sys.argv[2])
kind = socket.SOCK_DGRAM if sys.argv[1] == "udp" else socket.SOCK_STREAM
h = logging.handlers.SysLogHandler(address=("127.0.0.1", port), facility="local5", socktype=kind)
h.setFormatter(logging.Formatter("pyapp: %(message)s"))
log = logging.getLogger("t"); log.addHandler(h); log.setLevel(logging.DEBUG)
log.error("python says hi over " + sys.argv[1])
h.close()
"#;
    for (kind, proto) in [("udp", Protocol::Udp), ("tcp", Protocol::Tcp)] {
        run(Command::new("python3").args([
            "-c",
            script,
            kind,
            &addr_of(&app, proto).port().to_string(),
        ]));
        let row = row_where(&app, &format!("message = 'python says hi over {kind}'")).await;
        assert_eq!(row["app"], "pyapp");
        assert_eq!(
            (row["severity"].as_i64(), row["facility"].as_i64()),
            (Some(3), Some(21))
        );
        // No hostname in what Python sends: the sender's address stands in.
        assert_eq!(row["host"], "127.0.0.1");
        assert_eq!(
            app.metric("chute_syslog_malformed_total", &[]),
            0.0,
            "{row}"
        );
    }
    app.stop().await;
}

#[actix_web::test]
async fn rsyslog_forwards_with_octet_counted_and_traditional_framing() {
    let app = with_listeners(vec![
        ListenerConfig {
            name: Some("counted".into()),
            ..ListenerConfig::plain(Protocol::Tcp, any_port())
        },
        ListenerConfig {
            name: Some("traditional".into()),
            ..ListenerConfig::plain(Protocol::Tcp, any_port())
        },
    ])
    .await;
    let port_of = |name: &str| {
        app.syslog
            .iter()
            .find(|b| b.label == name)
            .and_then(|b| b.addr)
            .unwrap()
            .port()
    };
    let dir = temp_dir();
    let input = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let input_port = input.local_addr().unwrap().port();
    drop(input);
    let conf = dir.path().join("rsyslog.conf");
    std::fs::write(
        &conf,
        format!(
            r#"global(workDirectory="{dir}")
module(load="imudp")
input(type="imudp" address="127.0.0.1" port="{input_port}")
action(type="omfwd" target="127.0.0.1" port="{counted}" protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format")
action(type="omfwd" target="127.0.0.1" port="{traditional}" protocol="tcp")
"#,
            dir = dir.path().display(),
            counted = port_of("counted"),
            traditional = port_of("traditional"),
        ),
    )
    .unwrap();
    let mut rsyslog = Command::new("rsyslogd")
        .args(["-n", "-f"])
        .arg(&conf)
        .arg("-i")
        .arg(dir.path().join("rsyslog.pid"))
        .spawn()
        .expect("rsyslogd runs");
    // Keep sending until rsyslog is up and has forwarded one (UDP before it binds is lost).
    let deadline = Instant::now() + Duration::from_secs(30);
    let condition = "message = 'through rsyslog'";
    loop {
        run(Command::new("logger")
            .args([
                "--udp",
                "--server",
                "127.0.0.1",
                "--port",
                &input_port.to_string(),
            ])
            .args([
                "--rfc3164",
                "-t",
                "relayed",
                "--id=31",
                "-p",
                "daemon.notice",
                "through rsyslog",
            ]));
        let n: i64 = app
            .db
            .query_one(
                &format!("SELECT count(DISTINCT fields::text) FROM chute.logs WHERE {condition}"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if n >= 1
            && app.metric("chute_syslog_messages_total", &["listener=\"counted\""]) >= 1.0
            && app.metric("chute_syslog_messages_total", &["listener=\"traditional\""]) >= 1.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "rsyslog forwarded nothing");
        actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    }
    let _ = rsyslog.kill();
    let _ = rsyslog.wait();
    let rows = app
        .db
        .query(
            &format!("SELECT to_jsonb(l) FROM chute.logs l WHERE {condition}"),
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let row: Value = row.get(0);
        assert_eq!(row["app"], "relayed", "{row}");
        assert_eq!(row["procid"], "31", "{row}");
        assert_eq!(
            (row["severity"].as_i64(), row["facility"].as_i64()),
            (Some(5), Some(3)),
            "{row}"
        );
        assert!(row["fields"].get("parse_error").is_none(), "{row}");
    }
    assert_eq!(app.metric("chute_syslog_malformed_total", &[]), 0.0);
    app.stop().await;
}

/// A TLS listener on any port whose clients need a certificate of `pki`'s CA, its
/// PEM files written into `dir`.
pub(crate) fn mutual_tls(pki: &Pki, dir: &std::path::Path) -> ListenerConfig {
    let file = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    ListenerConfig {
        cert_file: Some(file("server.pem", &pki.server_cert)),
        key_file: Some(file("server.key", &pki.server_key)),
        client_ca_file: Some(file("ca.pem", &pki.ca)),
        ..ListenerConfig::plain(Protocol::Tls, any_port())
    }
}

/// Connects over TLS with a client certificate and sends `messages`, octet-counted.
pub(crate) async fn send_tls(
    addr: SocketAddr,
    ca_pem: &str,
    client: &rcgen::CertifiedKey,
    messages: &[&str],
) -> std::io::Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::AsyncWriteExt;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![client.cert.der().clone()],
            PrivateKeyDer::from_pem_slice(client.key_pair.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let mut tls = connector
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await?;
    for m in messages {
        tls.write_all(format!("{} {m}", m.len()).as_bytes()).await?;
    }
    tls.flush().await?;
    tls.shutdown().await?;
    // A refused client certificate shows up as an alert on the next read.
    let mut rest = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut rest).await?;
    Ok(())
}

#[actix_web::test]
async fn tls_with_client_certificates_takes_trusted_clients_and_refuses_others() {
    let (pki, dir) = (pki(), temp_dir());
    let app = with_listeners(vec![mutual_tls(&pki, dir.path())]).await;
    let addr = addr_of(&app, Protocol::Tls);
    send_tls(
        addr,
        &pki.ca,
        &pki.client,
        &["<165>1 2026-11-26T10:00:00Z web-1 tlsapp 1 - - over tls"],
    )
    .await
    .expect("a trusted client gets through");
    let row = row_where(&app, "message = 'over tls'").await;
    assert_eq!(
        (row["host"].as_str(), row["app"].as_str()),
        (Some("web-1"), Some("tlsapp"))
    );

    let refused = send_tls(
        addr,
        &pki.ca,
        &pki.stranger,
        &["<165>1 - - - - - - from a stranger"],
    )
    .await;
    assert!(
        refused.is_err(),
        "a client without a trusted certificate is refused"
    );
    actix_web::rt::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.scalar("SELECT count(*) FROM chute.logs WHERE message LIKE '%stranger%'")
            .await,
        0
    );
    assert!(
        app.metric(
            "chute_syslog_connections_refused_total",
            &["reason=\"tls_handshake\""]
        ) >= 1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_lying_octet_count_closes_the_connection_after_keeping_what_came_before() {
    let app = with_listeners(vec![ListenerConfig {
        max_message_bytes: 1024,
        ..ListenerConfig::plain(Protocol::Tcp, any_port())
    }])
    .await;
    let mut s = std::net::TcpStream::connect(addr_of(&app, Protocol::Tcp)).unwrap();
    let good = "<14>1 - h app - - - kept before the lie";
    s.write_all(format!("{} {good}99999999 <14>too long to be true", good.len()).as_bytes())
        .unwrap();
    let row = row_where(&app, "message = 'kept before the lie'").await;
    assert_eq!(row["host"], "h");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.metric("chute_syslog_connections_closed_total", &[]) < 1.0 {
        assert!(Instant::now() < deadline, "the connection was not closed");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[actix_web::test]
async fn an_octet_counted_message_over_the_limit_is_cut_and_the_connection_goes_on() {
    let app = with_listeners(vec![ListenerConfig {
        max_message_bytes: 600,
        ..ListenerConfig::plain(Protocol::Tcp, any_port())
    }])
    .await;
    let mut s = std::net::TcpStream::connect(addr_of(&app, Protocol::Tcp)).unwrap();
    let long = format!("<13>1 - h longframe - - - start{}", "x".repeat(50_000));
    let next = "<13>1 - h after - - - the next message";
    s.write_all(format!("{} {long}{} {next}", long.len(), next.len()).as_bytes())
        .unwrap();
    let row = row_where(&app, "app = 'after'").await;
    assert_eq!(row["message"], "the next message");
    let cut = row_where(&app, "app = 'longframe'").await;
    assert_eq!(cut["fields"]["truncated"], true);
    assert!(cut["message"].as_str().unwrap().len() < 600);
    assert_eq!(app.metric("chute_syslog_truncated_total", &[]), 1.0);
    assert_eq!(
        app.metric("chute_syslog_connections_closed_total", &[]),
        0.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_hostname_too_long_for_the_index_is_cut_and_the_record_stored() {
    let app = with_listeners(vec![ListenerConfig::plain(Protocol::Tcp, any_port())]).await;
    let mut s = std::net::TcpStream::connect(addr_of(&app, Protocol::Tcp)).unwrap();
    // Random text does not compress: PostgreSQL would refuse its btree entry.
    let host: String = (0..4000).map(|_| fastrand::lowercase()).collect();
    s.write_all(format!("<14>1 - {host} longhost - - - stored anyway\n").as_bytes())
        .unwrap();
    let row = row_where(&app, "app = 'longhost'").await;
    assert_eq!(row["host"].as_str().map(str::len), Some(1024));
    assert_eq!(row["fields"]["truncated"], true);
    assert_eq!(app.scalar("SELECT count(*) FROM chute.rejected").await, 0);
    app.stop().await;
}

#[actix_web::test]
async fn oversized_and_malformed_messages_are_kept_marked_and_counted() {
    let app = with_listeners(vec![
        ListenerConfig {
            max_message_bytes: 600,
            ..ListenerConfig::plain(Protocol::Tcp, any_port())
        },
        ListenerConfig::plain(Protocol::Udp, any_port()),
    ])
    .await;
    let mut s = std::net::TcpStream::connect(addr_of(&app, Protocol::Tcp)).unwrap();
    let long = format!("<13>1 - h big - - - start{}", "x".repeat(5000));
    s.write_all(format!("{long}\n").as_bytes()).unwrap();
    drop(s);
    let row = row_where(&app, "app = 'big'").await;
    assert_eq!(row["fields"]["truncated"], true);
    assert!(row["message"].as_str().unwrap().len() < 600);

    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.send_to(
        b"no pri, no header, just words\n",
        addr_of(&app, Protocol::Udp),
    )
    .unwrap();
    let row = row_where(&app, "message = 'no pri, no header, just words'").await;
    assert_eq!(
        (row["severity"].as_i64(), row["facility"].as_i64()),
        (Some(5), Some(1)),
        "PRI 13"
    );
    assert!(row["fields"]["parse_error"].is_string(), "{row}");
    assert_eq!(app.metric("chute_syslog_truncated_total", &[]), 1.0);
    assert_eq!(app.metric("chute_syslog_malformed_total", &[]), 1.0);
    app.stop().await;
}

#[actix_web::test]
async fn connections_past_the_cap_are_refused_and_counted() {
    let app = with_listeners(vec![ListenerConfig {
        max_connections: 1,
        ..ListenerConfig::plain(Protocol::Tcp, any_port())
    }])
    .await;
    let addr = addr_of(&app, Protocol::Tcp);
    let _first = tokio::net::TcpStream::connect(addr).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.metric("chute_syslog_connections", &[]) < 1.0 {
        assert!(Instant::now() < deadline);
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
    // (tokio, not std: chute runs on this test's thread and must not be blocked)
    let mut second = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::io::AsyncReadExt::read(&mut second, &mut buf),
    )
    .await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "closed at once: {read:?}"
    );
    assert_eq!(
        app.metric(
            "chute_syslog_connections_refused_total",
            &["reason=\"max_connections\""]
        ),
        1.0
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_unix_datagram_socket_takes_what_glibc_syslog_sends() {
    let dir = temp_dir();
    let path = dir.path().join("log");
    let app = with_listeners(vec![ListenerConfig {
        path: Some(path.clone()),
        address: None,
        ..ListenerConfig::plain(Protocol::Unix, any_port())
    }])
    .await;
    let sock = std::os::unix::net::UnixDatagram::unbound().unwrap();
    // glibc's syslog(3) format over /dev/log: no hostname.
    sock.send_to(b"<30>Nov 26 10:00:00 cron[123]: (root) CMD (true)", &path)
        .unwrap();
    let row = row_where(&app, "app = 'cron'").await;
    assert_eq!(row["procid"], "123");
    assert_eq!(row["message"], "(root) CMD (true)");
    assert_eq!(
        (row["severity"].as_i64(), row["facility"].as_i64()),
        (Some(6), Some(3))
    );
    app.stop().await;
}

#[actix_web::test]
async fn a_unix_socket_gets_its_mode_and_one_in_use_is_never_taken_over() {
    use std::os::unix::fs::PermissionsExt;
    let dir = temp_dir();
    let path = dir.path().join("log");
    let unix = |mode: u32| ListenerConfig {
        path: Some(path.clone()),
        address: None,
        socket_mode: mode,
        ..ListenerConfig::plain(Protocol::Unix, any_port())
    };
    // Another process receives on the path: chute refuses to start, the socket stays.
    let other = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let dsn = fresh_database().await;
    let mut config = test_config(&dsn);
    config.syslog.listeners = Some(vec![unix(0o666)]);
    let refused = chute::app::Application::build(config.clone()).await;
    let error = format!("{:#}", refused.err().expect("refused"));
    assert!(error.contains("another process receives on"), "{error}");
    let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
    client.send_to(b"still mine", &path).unwrap();
    let mut buf = [0u8; 64];
    let n = other.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"still mine");
    drop(other);
    // A process another test forks in this moment holds a copy of the socket until
    // it execs: wait until nobody receives on the path any more.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::os::unix::net::UnixDatagram::unbound()
        .unwrap()
        .connect(&path)
        .is_ok()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the socket stays in use"
        );
        actix_web::rt::time::sleep(std::time::Duration::from_millis(10)).await;
    }

    // A stale socket is replaced, with the mode asked for; the refused start
    // released its queue, so the same data directory opens at once.
    config.syslog.listeners = Some(vec![unix(0o620)]);
    let app = spawn_config(config).await;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o620);
    app.stop().await;
}
