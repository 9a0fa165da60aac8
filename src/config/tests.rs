use super::*;

#[test]
fn an_empty_file_is_the_embedded_default() {
    let c = Config::from_toml("").unwrap();
    assert!(c.embedded());
    assert_eq!(c.http.listen, default_listen());
    assert_eq!(c.node.data_dir, PathBuf::from("./chute-data"));
    assert_eq!(c.embedded_pg_dir(), PathBuf::from("./chute-data/pg"));
}

#[test]
fn every_error_is_reported_with_its_key_path() {
    let text = r#"
        [http]
        listen = "not an address"
        [writer]
        batch_rows = 0
        [[shards]]
        id = 1
        dsn = "host=/tmp"
        [[shards]]
        id = 1
        dsn = "host=/tmp"
        pool_size = 0
        [[shards]]
        id = 2
        dsn = "host=/tmp"
        colour = "blue"
        [bogus]
    "#;
    let errors = Config::from_toml(text).unwrap_err().0;
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    for expected in ["http.listen", "shards[2].colour", "bogus"] {
        assert!(
            paths.contains(&expected),
            "{expected} missing from {errors:?}"
        );
    }
    // Semantic checks run on the sections that parsed.
    assert!(paths.contains(&"writer.batch_rows"), "{errors:?}");
}

#[test]
fn a_syslog_message_limit_is_between_480_bytes_and_64_mib() {
    for (bytes, ok) in [
        (479, false),
        (480, true),
        (64 << 20, true),
        ((64 << 20) + 1, false),
    ] {
        let text = format!(
            "[[syslog.listeners]]\nprotocol = \"udp\"\naddress = \"127.0.0.1:0\"\nmax_message_bytes = {bytes}\n"
        );
        let result = Config::from_toml(&text);
        assert_eq!(result.is_ok(), ok, "{bytes}: {result:?}");
        if let Err(e) = result {
            assert_eq!(e.0[0].path, "syslog.listeners[0].max_message_bytes");
        }
    }
}

#[test]
fn client_tenants_need_a_client_ca_and_valid_tenant_names() {
    let listener = |extra: &str| {
        format!(
            "[[syslog.listeners]]\nprotocol = \"tls\"\naddress = \"127.0.0.1:0\"\ncert_file = \"c\"\nkey_file = \"k\"\n{extra}"
        )
    };
    let paths = |extra: &str| -> Vec<String> {
        match Config::from_toml(&listener(extra)) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.path).collect(),
        }
    };
    assert_eq!(
        paths(
            "client_ca_file = \"ca\"\nclient_tenants = { \"web-1\" = \"web\", \"*\" = \"rest\" }\n"
        ),
        Vec::<String>::new()
    );
    assert_eq!(
        paths("client_tenants = { \"web-1\" = \"web\" }\n"),
        ["syslog.listeners[0].client_tenants"]
    );
    assert_eq!(
        paths("client_ca_file = \"ca\"\nclient_tenants = { \"web-1\" = \"no spaces\" }\n"),
        ["syslog.listeners[0].client_tenants.\"web-1\""]
    );
    assert_eq!(paths("tenant = \"\"\n"), ["syslog.listeners[0].tenant"]);
}

#[test]
fn semantic_errors_name_each_shard() {
    let text = r#"
        [[shards]]
        id = 1
        dsn = "host=/tmp"
        [[shards]]
        id = 1
        dsn = "host=/tmp"
        pool_size = 0
    "#;
    let errors = Config::from_toml(text).unwrap_err().0;
    let paths: Vec<_> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["shards[1].id", "shards[1].pool_size"]);
}

#[test]
fn a_dsn_never_prints() {
    let c =
        Config::from_toml("[[shards]]\nid = 0\ndsn = \"host=/tmp password=hunter2\"\n").unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn the_annotated_example_is_valid_and_shows_the_defaults() {
    let example = Config::from_toml(include_str!("../../config.toml")).unwrap();
    assert_eq!(example, Config::default());
}

const CLUSTER: &str = r#"
    [node]
    id = "a"
    [[nodes]]
    id = "a"
    url = "http://127.0.0.1:7280"
    [[nodes]]
    id = "b"
    url = "http://127.0.0.1:7281"
    [[shards]]
    id = 0
    owner = "a"
    dsn = "host=/tmp dbname=s0"
    [[shards]]
    id = 1
    owner = "b"
    dsn = "host=/tmp dbname=s1"
    [cluster]
    peer_token = "0123456789abcdef-secret"
"#;

#[test]
fn a_cluster_layout_is_checked() {
    let c = Config::from_toml(CLUSTER).unwrap();
    assert!(c.is_local(&c.shards[0]) && !c.is_local(&c.shards[1]));
    assert!(!format!("{c:?}").contains("0123456789abcdef-secret"));

    let no_token = CLUSTER.replace("peer_token = \"0123456789abcdef-secret\"", "");
    let short_in_list = CLUSTER.replace(
        "peer_token = \"0123456789abcdef-secret\"",
        "peer_token = [\"0123456789abcdef-secret\", \"short\"]",
    );
    let rotating = Config::from_toml(&CLUSTER.replace(
        "peer_token = \"0123456789abcdef-secret\"",
        "peer_token = [\"fedcba9876543210-new\", \"0123456789abcdef-secret\"]",
    ))
    .unwrap();
    assert_eq!(rotating.cluster.peer_token.len(), 2);
    assert_eq!(
        rotating.cluster.peer_token[0].expose(),
        "fedcba9876543210-new"
    );
    let bad_owner = CLUSTER.replace("owner = \"b\"", "owner = \"c\"");
    let dup_node = CLUSTER.replace("id = \"b\"", "id = \"a\"");
    let not_member = CLUSTER.replacen("id = \"a\"", "id = \"z\"", 1);
    for (text, path) in [
        (no_token, "cluster.peer_token"),
        (short_in_list, "cluster.peer_token"),
        (bad_owner, "shards[1].owner"),
        (dup_node, "nodes[1].id"),
        (not_member, "node.id"),
    ] {
        let errors = Config::from_toml(&text).unwrap_err().0;
        assert!(
            errors.iter().any(|e| e.path == path),
            "{path} missing from {errors:?}"
        );
    }
}

#[test]
fn the_fingerprint_follows_the_layout_but_not_the_order_or_the_dsns() {
    let a = Config::from_toml(CLUSTER).unwrap();
    let mut b = a.clone();
    b.nodes.reverse();
    b.shards.reverse();
    b.shards[0].dsn = Secret::new("host=elsewhere dbname=s1");
    b.node.id = "b".into();
    assert_eq!(a.layout_fingerprint(), b.layout_fingerprint());
    b.shards[0].owner = Some("a".into());
    assert_ne!(a.layout_fingerprint(), b.layout_fingerprint());
    let mut c = a.clone();
    c.cluster.shard_key = ShardKey::Record;
    assert_ne!(a.layout_fingerprint(), c.layout_fingerprint());
}

#[test]
fn broken_toml_is_one_clear_error() {
    let errors = Config::from_toml("[http\nlisten=").unwrap_err().0;
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.starts_with("invalid TOML"), "{errors:?}");
}
