//! A three-node chute cluster on one machine, for trying it out (`scripts/dev cluster`).
//!
//! Starts one PostgreSQL (with chute's embedded-PostgreSQL code) in
//! `./chute-demo/pg` holding four shard databases, writes a configuration per node
//! (`./chute-demo/{a,b,c}.toml`: a writes shards 0 and 3, b shard 1, c shard 2), runs
//! `chute serve` for each on 127.0.0.1:7281..7283, prints what to try, and stops
//! everything on Ctrl-C.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use chute_embedded_pg::{EmbeddedOptions, EmbeddedPostgres};

const NODES: [(&str, u16); 3] = [("a", 7281), ("b", 7282), ("c", 7283)];
const OWNERS: [&str; 4] = ["a", "b", "c", "a"];

fn main() -> anyhow::Result<()> {
    let root = PathBuf::from("chute-demo");
    std::fs::create_dir_all(&root)?;
    let root = root.canonicalize()?;
    // PostgreSQL runs as another user when this runs as root: let it in.
    set_mode(&root, 0o755)?;
    let pg = EmbeddedPostgres::start(&root.join("pg"), EmbeddedOptions::default())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    for shard in 0..OWNERS.len() {
        // Already there from an earlier run: fine.
        let _ = runtime.block_on(pg.create_database(&format!("shard{shard}")));
    }

    let chute = std::env::var("CHUTE_BIN").unwrap_or_else(|_| "target/release/chute".into());
    let mut children: Vec<Child> = Vec::new();
    for (id, port) in NODES {
        let config = root.join(format!("{id}.toml"));
        std::fs::write(&config, node_config(id, port, &root, &pg))?;
        let log = std::fs::File::create(root.join(format!("{id}.log")))?;
        children.push(
            Command::new(&chute)
                .args(["serve", "--config"])
                .arg(&config)
                .stderr(log)
                .spawn()?,
        );
    }
    std::thread::sleep(Duration::from_secs(2));
    println!(
        "three nodes running (logs in {0}/a.log, b.log, c.log); try:\n\n\
         for port in 7281 7282 7283; do\n  \
           curl -s -H 'content-type: application/x-ndjson' http://127.0.0.1:$port/api/v1/logs \\\n    \
           --data-binary \"$(for i in $(seq 1 1000); do echo '{{\"host\":\"web-'$i'\",\"message\":\"hello from '$port'\"}}'; done)\"\n\
         done\n\
         {chute} cluster --url http://127.0.0.1:7281\n\
         for s in 0 1 2 3; do psql -h {1} -p {2} -U postgres -d shard$s -Atc \"SELECT 'shard $s', count(*) FROM chute.logs\"; done\n\n\
         Ctrl-C stops the nodes and PostgreSQL; {0} keeps their data.",
        root.display(),
        pg.socket_dir().display(),
        pg.port(),
    );
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r,
            _ = term.recv() => Ok(()),
        }
    })?;
    for child in &mut children {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    for child in &mut children {
        let _ = child.wait();
    }
    pg.shutdown()?;
    Ok(())
}

fn node_config(id: &str, port: u16, root: &Path, pg: &EmbeddedPostgres) -> String {
    let mut text = format!(
        "[node]\nid = \"{id}\"\ndata_dir = \"{}\"\n\n[http]\nlisten = \"127.0.0.1:{port}\"\n\n\
         [syslog]\nlisteners = []\n\n[cluster]\npeer_token = \"demo-token-change-me-0123456789\"\n\n",
        root.join(format!("data-{id}")).display()
    );
    for (node, port) in NODES {
        text.push_str(&format!(
            "[[nodes]]\nid = \"{node}\"\nurl = \"http://127.0.0.1:{port}\"\n\n"
        ));
    }
    for (shard, owner) in OWNERS.iter().enumerate() {
        let dsn = pg
            .dsn(&format!("shard{shard}"))
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        text.push_str(&format!(
            "[[shards]]\nid = {shard}\nowner = \"{owner}\"\ndsn = \"{dsn}\"\n\n"
        ));
    }
    text
}

fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}
