use super::*;
use std::fs::{self};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self};
use std::time::{Duration, Instant};

use crate::host::*;
use crate::procs::*;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Pid, User};
use std::str::FromStr;
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio_postgres::config::Host;
use tokio_postgres::NoTls;

/// A temp dir the server user can pass through (tempfile makes them 0700).
fn temp_root() -> TempDir {
    let tmp = tempfile::Builder::new()
        .prefix("chute-pg")
        .tempdir()
        .expect("create temp dir");
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
    tmp
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

async fn connect(pg: &EmbeddedPostgres, db: &str) -> tokio_postgres::Client {
    let config = tokio_postgres::Config::from_str(&pg.dsn(db)).expect("dsn parses");
    let (client, connection) = config.connect(NoTls).await.expect("connect");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

async fn count(pg: &EmbeddedPostgres) -> i64 {
    let client = connect(pg, "chute").await;
    client
        .query_one("SELECT count(*) FROM kept", &[])
        .await
        .expect("count rows")
        .get(0)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// Alive and not a zombie.
fn pid_alive(pid: i32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().next())
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// (uid, process group) of a process.
fn uid_and_pgrp(pid: i32) -> (u32, i32) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|u| u.parse().ok())
        .expect("effective uid");
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let pgrp = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().nth(2))
        .and_then(|p| p.parse().ok())
        .expect("pgrp");
    (uid, pgrp)
}

fn processes_on(dir: &Path) -> Vec<ProcInfo> {
    server_processes(&fs::canonicalize(dir).expect("canonical dir"))
}

fn start(dir: &Path) -> EmbeddedPostgres {
    EmbeddedPostgres::start(dir, EmbeddedOptions::default()).expect("start PostgreSQL")
}

#[test]
fn dsn_round_trips_through_tokio_postgres() {
    let dir = Path::new("/tmp/odd dir/it's \\here");
    let config =
        tokio_postgres::Config::from_str(&dsn_for(dir, 6543, "my db'x")).expect("dsn parses");
    assert_eq!(config.get_hosts(), &[Host::Unix(dir.to_path_buf())]);
    assert_eq!(config.get_ports(), &[6543]);
    assert_eq!(config.get_user(), Some("postgres"));
    assert_eq!(config.get_dbname(), Some("my db'x"));
}

#[test]
fn binaries_come_from_path_first_then_the_highest_debian_version() {
    let tmp = TempDir::new().expect("temp dir");
    let fake = |dir: &Path| {
        fs::create_dir_all(dir).expect("mkdir");
        for bin in ["postgres", "initdb"] {
            fs::write(dir.join(bin), "#!/bin/sh\n").expect("write");
            fs::set_permissions(dir.join(bin), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    };
    let lib = tmp.path().join("lib");
    let nothing = tmp.path().join("empty");
    fs::create_dir_all(&nothing).expect("mkdir");
    assert!(matches!(
        find_binaries_in(Some(nothing.clone().into()), &lib, None),
        Err(EmbeddedError::BinariesNotFound)
    ));
    fake(&lib.join("13/bin"));
    fake(&lib.join("15/bin"));
    fs::create_dir_all(lib.join("16/bin")).expect("mkdir"); // no binaries: skipped
    let found = find_binaries_in(Some(nothing.into()), &lib, None).expect("found");
    assert_eq!(found.postgres, lib.join("15/bin/postgres"));
    let on_path = tmp.path().join("path");
    fake(&on_path);
    let found = find_binaries_in(Some(on_path.clone().into()), &lib, None).expect("found");
    assert_eq!(found.initdb, on_path.join("initdb"));
}

#[test]
fn binaries_must_match_the_major_version_of_the_data() {
    let tmp = TempDir::new().expect("temp dir");
    let fake = |dir: &Path, version: &str| {
        fs::create_dir_all(dir).expect("mkdir");
        let script = format!("#!/bin/sh\necho 'postgres (PostgreSQL) {version} (Debian)'\n");
        for bin in ["postgres", "initdb"] {
            fs::write(dir.join(bin), &script).expect("write");
            fs::set_permissions(dir.join(bin), fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    };
    let lib = tmp.path().join("lib");
    let on_path = tmp.path().join("path");
    fake(&on_path, "16.2");
    fake(&lib.join("15/bin"), "15.18");
    fake(&lib.join("16/bin"), "16.2");
    let path = || Some(on_path.clone().into_os_string());
    // No data yet: PATH first, as before.
    let fresh = find_binaries_in(path(), &lib, None).expect("found");
    assert_eq!(fresh.postgres, on_path.join("postgres"));
    // Data of 15: the 15 binaries, although 16 comes first on PATH.
    let old = find_binaries_in(path(), &lib, Some("15")).expect("found");
    assert_eq!(old.postgres, lib.join("15/bin/postgres"));
    // Data of 16 without a Debian directory for it: the PATH binary says 16.
    fs::remove_dir_all(lib.join("16")).expect("rm");
    let on = find_binaries_in(path(), &lib, Some("16")).expect("found");
    assert_eq!(on.postgres, on_path.join("postgres"));
    // Data of 14: nothing will do, and the message names the package.
    let err = find_binaries_in(path(), &lib, Some("14")).expect_err("no 14");
    let text = err.to_string();
    assert!(
        text.contains("postgresql-14") && text.contains("PostgreSQL 14"),
        "{text}"
    );
    // PG_VERSION is read from the data directory.
    let data = tmp.path().join("data");
    fs::create_dir_all(&data).expect("mkdir");
    assert_eq!(data_version(&data), None);
    fs::write(data.join("PG_VERSION"), "15\n").expect("write");
    assert_eq!(data_version(&data).as_deref(), Some("15"));
}

#[test]
fn without_a_server_user_chute_stops_rather_than_run_postgres_as_nobody() {
    let err = resolve_owner(Some("no-such-user-for-chute")).expect_err("no such user");
    assert!(err.to_string().contains("no such user"), "{err}");
    // A host with `nobody` but no `postgres` user.
    let only_nobody = |name: &str| {
        Ok(User::from_name(name)
            .ok()
            .flatten()
            .filter(|_| name == "nobody"))
    };
    let err = resolve_owner_with(None, only_nobody).expect_err("no postgres user");
    let text = err.to_string();
    assert!(
        text.contains("\"postgres\"") && text.contains("useradd --system"),
        "{text}"
    );
    let named = resolve_owner_with(Some("nobody"), only_nobody).expect("asked for by name");
    assert_eq!(named.name, "nobody");
}

#[test]
fn missing_binaries_error_names_the_package() {
    let text = EmbeddedError::BinariesNotFound.to_string();
    assert!(text.contains("apt-get install postgresql"), "{text}");
    find_binaries(Path::new("/nonexistent")).expect("this machine has PostgreSQL server binaries");
}

#[test]
fn rejects_unusable_arguments() {
    let tmp = temp_root();
    let long = tmp.path().join("d".repeat(110));
    let err = EmbeddedPostgres::start(&long, EmbeddedOptions::default()).expect_err("must fail");
    assert!(
        matches!(err, EmbeddedError::SocketPathTooLong { .. }),
        "{err}"
    );

    let dir = tmp.path().join("pg");
    let opts = EmbeddedOptions {
        port: 0,
        ..EmbeddedOptions::default()
    };
    let err = EmbeddedPostgres::start(&dir, opts).expect_err("must fail");
    assert!(matches!(err, EmbeddedError::InvalidOption { .. }), "{err}");

    let opts = EmbeddedOptions {
        settings: vec![("work_mem=1MB -c x".into(), "1".into())],
        ..EmbeddedOptions::default()
    };
    let err = EmbeddedPostgres::start(&dir, opts).expect_err("must fail");
    assert!(matches!(err, EmbeddedError::InvalidOption { .. }), "{err}");

    let full = tmp.path().join("full");
    fs::create_dir(&full).expect("mkdir");
    fs::write(full.join("precious.txt"), "keep me").expect("write");
    let err = EmbeddedPostgres::start(&full, EmbeddedOptions::default()).expect_err("must fail");
    assert!(
        matches!(err, EmbeddedError::DataDirNotEmpty { .. }),
        "{err}"
    );
    assert!(full.join("precious.txt").exists());

    assert!(matches!(
        validate_database_name(&"x".repeat(64)),
        Err(EmbeddedError::InvalidDatabaseName { .. })
    ));
    assert!(validate_database_name("").is_err());
    assert!(validate_database_name("ok-name").is_ok());
}

#[test]
fn root_checks_run_as_user_and_path() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let closed = tempfile::tempdir().expect("temp dir");
    fs::set_permissions(closed.path(), fs::Permissions::from_mode(0o700)).expect("chmod");
    let err = EmbeddedPostgres::start(&closed.path().join("pg"), EmbeddedOptions::default())
        .expect_err("must fail");
    match &err {
        EmbeddedError::NotTraversable { dir, .. } => assert_eq!(dir, closed.path()),
        other => panic!("expected NotTraversable, got {other}"),
    }
    assert!(err.to_string().contains("chmod"), "{err}");

    let tmp = temp_root();
    for user in ["root", "no-such-user-chute"] {
        let opts = EmbeddedOptions {
            run_as: Some(user.into()),
            ..EmbeddedOptions::default()
        };
        let err = EmbeddedPostgres::start(&tmp.path().join("pg"), opts).expect_err("must fail");
        assert!(matches!(err, EmbeddedError::InvalidRunAs { .. }), "{err}");
    }
}

#[test]
fn lifecycle_restart_crash_shutdown_and_reuse() {
    let tmp = temp_root();
    let dir = tmp.path().join("pg");
    let rt = runtime();
    let pg = start(&dir);
    assert!(pg.is_running());
    assert_eq!(pg.restarts(), 0);
    assert_eq!(pg.user(), "postgres");
    assert_eq!(pg.socket_dir(), dir);
    assert!(dir.join(format!(".s.PGSQL.{}", pg.port())).exists());
    assert!(pg.log_dir().join("postmaster.log").exists());
    let pid = pg.pid().expect("postmaster pid") as i32;
    let (uid, pgrp) = uid_and_pgrp(pid);
    assert_eq!(pgrp, pid, "postmaster leads its own process group");
    if nix::unistd::geteuid().is_root() {
        let postgres = User::from_name("postgres").expect("lookup").expect("user");
        assert_eq!(uid, postgres.uid.as_raw(), "runs as the postgres user");
    }

    rt.block_on(async {
        let client = connect(&pg, "chute").await;
        client
            .batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (1), (2)")
            .await
            .expect("create table");

        pg.create_database("per_test_1")
            .await
            .expect("create database");
        let other = connect(&pg, "per_test_1").await;
        let one: i32 = other
            .query_one("SELECT 1", &[])
            .await
            .expect("query")
            .get(0);
        assert_eq!(one, 1);
        let err = pg
            .create_database("per_test_1")
            .await
            .expect_err("must fail");
        assert!(err.to_string().contains("already exists"), "{err}");
        let err = pg.create_database("").await.expect_err("must fail");
        assert!(matches!(err, EmbeddedError::InvalidDatabaseName { .. }));
    });

    // Requested restart: new postmaster, data kept, not counted as a crash.
    pg.restart().expect("restart");
    let pid2 = pg.pid().expect("pid after restart") as i32;
    assert_ne!(pid, pid2);
    assert!(!pid_alive(pid));
    assert!(pg.is_running());
    assert_eq!(pg.restarts(), 0);
    assert_eq!(rt.block_on(count(&pg)), 2);

    // Crash: SIGKILL from outside; the supervisor brings it back.
    rt.block_on(async {
        // A busy backend to orphan.
        let client = connect(&pg, "chute").await;
        client.batch_execute("SELECT 1").await.expect("query");
        kill(Pid::from_raw(pid2), Signal::SIGKILL).expect("kill -9 postmaster");
        wait_for("crash noticed", Duration::from_secs(10), || {
            !pg.is_running() || pg.restarts() == 1
        });
    });
    wait_for("restart after crash", Duration::from_secs(60), || {
        pg.restarts() == 1 && pg.is_running()
    });
    let pid3 = pg.pid().expect("pid after crash restart") as i32;
    assert_ne!(pid3, pid2);
    assert_eq!(rt.block_on(count(&pg)), 2);
    // Only the new server's processes remain.
    for p in processes_on(&dir) {
        assert!(p.pid == pid3 || p.ppid == pid3, "stray process {p:?}");
    }
    assert_eq!(pg.restarts(), 1);

    pg.shutdown().expect("shutdown");
    assert!(!pid_alive(pid3));
    assert!(processes_on(&dir).is_empty(), "no server process left");
    assert!(!dir.join("postmaster.pid").exists(), "clean shutdown");

    // Same directory again: the cluster is reused, not re-created.
    let version_file = fs::metadata(dir.join("PG_VERSION")).expect("PG_VERSION");
    let pg = start(&dir);
    assert_eq!(rt.block_on(count(&pg)), 2);
    let again = fs::metadata(dir.join("PG_VERSION")).expect("PG_VERSION");
    assert_eq!(version_file.modified().ok(), again.modified().ok());
    assert_eq!(pg.restarts(), 0);
    let pid4 = pg.pid().expect("pid") as i32;
    drop(pg);
    assert!(!pid_alive(pid4), "drop stops PostgreSQL");
    assert!(processes_on(&dir).is_empty());
}

#[test]
fn survives_the_starting_thread() {
    let tmp = temp_root();
    let dir = tmp.path().join("pg");
    let starter_dir = dir.clone();
    let pg = thread::spawn(move || start(&starter_dir))
        .join()
        .expect("starter thread");
    // PDEATHSIG would have fired when the starter thread ended, had it forked
    // the postmaster.
    thread::sleep(Duration::from_secs(1));
    assert!(pg.is_running());
    let pid = pg.pid().expect("pid") as i32;
    assert!(pid_alive(pid));
    let rt = runtime();
    rt.block_on(async {
        let client = connect(&pg, "chute").await;
        client.batch_execute("SELECT 1").await.expect("query");
    });
    assert_eq!(pg.pid(), Some(pid as u32));
    pg.shutdown().expect("shutdown");
}

#[test]
fn stops_a_postmaster_left_by_an_earlier_run() {
    let tmp = temp_root();
    let dir = tmp.path().join("pg");
    start(&dir).shutdown().expect("first run");

    // An orphaned postmaster, as a pre-PDEATHSIG chute killed with -9 would
    // leave: started through a shell that exits at once.
    let bins = find_binaries(Path::new("/nonexistent")).expect("binaries");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg("\"$@\" >/dev/null 2>&1 &")
        .arg("sh")
        .arg(&bins.postgres)
        .arg("-D")
        .arg(&dir)
        .arg("-k")
        .arg(&dir)
        .arg("-c")
        .arg("listen_addresses=")
        .current_dir(&dir);
    if nix::unistd::geteuid().is_root() {
        let owner = resolve_owner(None).expect("owner");
        cmd.uid(owner.uid.as_raw()).gid(owner.gid.as_raw());
    }
    assert!(cmd.status().expect("run sh").success());
    wait_for("orphan postmaster", Duration::from_secs(30), || {
        dir.join(".s.PGSQL.5432").exists()
    });
    let orphans = processes_on(&dir);
    let orphan = orphans
        .iter()
        .find(|p| !p.is_child)
        .expect("orphan postmaster")
        .pid;

    let pg = start(&dir);
    assert!(!pid_alive(orphan), "the earlier postmaster was stopped");
    assert_ne!(pg.pid(), Some(orphan as u32));
    let rt = runtime();
    rt.block_on(async {
        connect(&pg, "chute").await;
    });
    pg.shutdown().expect("shutdown");
}

#[test]
fn refuses_a_directory_another_supervisor_runs() {
    let tmp = temp_root();
    let dir = tmp.path().join("pg");
    let pg = start(&dir);
    let err = EmbeddedPostgres::start(&dir, EmbeddedOptions::default()).expect_err("must fail");
    assert!(matches!(err, EmbeddedError::DataDirInUse { .. }), "{err}");
    assert!(pg.is_running());
    let rt = runtime();
    rt.block_on(async {
        connect(&pg, "chute").await;
    });
    pg.shutdown().expect("shutdown");
}

#[test]
fn start_failure_shows_the_server_log() {
    let tmp = temp_root();
    let opts = EmbeddedOptions {
        settings: vec![("no_such_setting".into(), "1".into())],
        ..EmbeddedOptions::default()
    };
    let dir = tmp.path().join("pg");
    let err = EmbeddedPostgres::start(&dir, opts).expect_err("must fail");
    assert!(matches!(err, EmbeddedError::StartFailed { .. }), "{err}");
    assert!(err.to_string().contains("no_such_setting"), "{err}");
    assert!(processes_on(&dir).is_empty());
}

#[test]
fn handle_can_live_in_a_static() {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<EmbeddedPostgres>();
    send_sync::<EmbeddedError>();
}

#[test]
fn odd_characters_in_the_path() {
    let tmp = temp_root();
    let parent = tmp.path().join("a b'c\"d\\e");
    fs::create_dir(&parent).expect("mkdir");
    fs::set_permissions(&parent, fs::Permissions::from_mode(0o755)).expect("chmod");
    let dir = parent.join("pg");
    let pg = start(&dir);
    assert!(dir.join(".s.PGSQL.5432").exists());
    runtime().block_on(async {
        connect(&pg, "chute").await;
    });
    pg.shutdown().expect("shutdown");
}

#[test]
fn restart_under_load() {
    let tmp = temp_root();
    let pg = Arc::new(start(&tmp.path().join("pg")));
    let stop = Arc::new(AtomicBool::new(false));
    let inserted = Arc::new(AtomicU64::new(0));
    let writer = {
        let (pg, stop, inserted) = (Arc::clone(&pg), Arc::clone(&stop), Arc::clone(&inserted));
        thread::spawn(move || {
            runtime().block_on(async {
                let config = pg.config("chute");
                while !stop.load(Ordering::SeqCst) {
                    let Ok((client, connection)) = config.connect(NoTls).await else {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    };
                    tokio::spawn(async move {
                        let _ = connection.await;
                    });
                    let _ = client
                        .batch_execute("CREATE TABLE IF NOT EXISTS load (x int)")
                        .await;
                    while !stop.load(Ordering::SeqCst) {
                        match client.execute("INSERT INTO load VALUES (1)", &[]).await {
                            Ok(_) => inserted.fetch_add(1, Ordering::SeqCst),
                            Err(_) => break,
                        };
                    }
                }
            });
        })
    };
    for _ in 0..2 {
        let before = inserted.load(Ordering::SeqCst);
        wait_for("inserts", Duration::from_secs(30), || {
            inserted.load(Ordering::SeqCst) > before + 50
        });
        pg.restart().expect("restart under load");
        assert!(pg.is_running());
    }
    let before = inserted.load(Ordering::SeqCst);
    wait_for("inserts after restarts", Duration::from_secs(30), || {
        inserted.load(Ordering::SeqCst) > before + 50
    });
    stop.store(true, Ordering::SeqCst);
    writer.join().expect("writer");
    assert_eq!(pg.restarts(), 0);
    let pg = Arc::into_inner(pg).expect("sole owner");
    pg.shutdown().expect("shutdown");
}
