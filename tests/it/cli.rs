//! The `chute` binary's own commands.

use std::process::Command;

use crate::helpers::{alive, Daemon};

fn chute(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_chute"))
        .args(args)
        .env_remove("CHUTE_CONFIG")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_reports_every_error_with_its_key_path_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "[http]\nlisten = \"nowhere\"\n[writer]\nbatch_rows = 0\n[[shards]]\nid = 0\ndsn = \"host=/tmp\"\nsecret_sauce = 1\n",
    )
    .unwrap();
    let (code, _, err) = chute(&["validate", "--config", file.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    for path in [
        "http.listen:",
        "writer.batch_rows:",
        "shards[0].secret_sauce:",
    ] {
        assert!(err.contains(path), "{path} missing from:\n{err}");
    }
}

#[test]
fn validate_prints_one_line_and_exits_0_for_the_example_config() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    let (code, out, err) = chute(&["validate", "--config", example]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(out.starts_with("configuration is valid"), "{out}");
}

#[test]
fn a_missing_config_file_is_a_clear_error() {
    let (code, _, err) = chute(&["serve", "--config", "/nonexistent/chute.toml"]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/chute.toml"), "{err}");
}

#[test]
fn kill_9_of_chute_takes_its_postgres_down_and_the_next_start_recovers() {
    let dir = crate::helpers::temp_dir();
    let config = dir.path().join("chute.toml");
    std::fs::write(
        &config,
        format!(
            "[node]\ndata_dir = \"{}/data\"\n[http]\nlisten = \"127.0.0.1:0\"\n[syslog]\nlisteners = []\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let mut first = Daemon::start(&config, dir.path().join("first.log"));
    let pid_file = dir.path().join("data/pg/postmaster.pid");
    let postmaster: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive(postmaster));

    first.child.kill().unwrap(); // SIGKILL: chute gets no chance to stop PostgreSQL itself
    first.child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while alive(postmaster) {
        assert!(
            std::time::Instant::now() < deadline,
            "PostgreSQL outlived chute"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    let second = Daemon::start(&config, dir.path().join("second.log"));
    second.wait_for("chute is listening");
}
