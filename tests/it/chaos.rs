//! A TCP proxy between chute and PostgreSQL that the tests can break on purpose:
//! cut every connection and refuse new ones (an outage), swallow the reply to
//! the next COMMIT (the commit happened; chute never hears of it), or mute the open
//! connections without closing them (a half-open link: no FIN, no RST).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UnixStream};
use tokio::sync::watch;

/// The bytes of the simple-query message `COMMIT` (what tokio-postgres sends).
const COMMIT: &[u8] = b"Q\0\0\0\x0bCOMMIT\0";

pub struct ChaosProxy {
    pub port: u16,
    up: watch::Sender<bool>,
    cut_after_commit: Arc<AtomicBool>,
    /// COMMITs whose reply was swallowed.
    pub swallowed: Arc<AtomicUsize>,
    /// Connections numbered below this relay nothing more, and stay open.
    muted_below: Arc<AtomicU64>,
    /// Number of the next connection.
    next_id: Arc<AtomicU64>,
}

impl ChaosProxy {
    /// Listens on a free loopback port and forwards to the PostgreSQL socket file.
    /// Runs on its own thread and runtime, so it outlives any one test runtime.
    pub fn start(socket: PathBuf) -> ChaosProxy {
        let (up, up_rx) = watch::channel(true);
        let cut_after_commit = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicUsize::new(0));
        let muted_below = Arc::new(AtomicU64::new(0));
        let next_id = Arc::new(AtomicU64::new(0));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        {
            let (cut, swallowed) = (cut_after_commit.clone(), swallowed.clone());
            let (muted_below, next_id) = (muted_below.clone(), next_id.clone());
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                    port_tx.send(listener.local_addr().unwrap().port()).unwrap();
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            return;
                        };
                        if !*up_rx.borrow() {
                            drop(client); // down: refuse
                            continue;
                        }
                        let (socket, up_rx, cut, swallowed) = (
                            socket.clone(),
                            up_rx.clone(),
                            cut.clone(),
                            swallowed.clone(),
                        );
                        let mute = Mute {
                            id: next_id.fetch_add(1, Ordering::SeqCst),
                            below: muted_below.clone(),
                        };
                        tokio::spawn(async move {
                            if let Ok(server) = UnixStream::connect(&socket).await {
                                pipe(client, server, up_rx, cut, swallowed, mute).await;
                            }
                        });
                    }
                });
            });
        }
        ChaosProxy {
            port: port_rx.recv().unwrap(),
            up,
            cut_after_commit,
            swallowed,
            muted_below,
            next_id,
        }
    }

    /// Every connection open now stops relaying in both directions, but stays open:
    /// neither side hears a FIN or a RST. New connections work.
    pub fn mute_open_connections(&self) {
        self.muted_below
            .store(self.next_id.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// A DSN for `dbname` through the proxy.
    pub fn dsn(&self, dbname: &str) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname={dbname}",
            self.port
        )
    }

    /// Down: every connection is cut and new ones are refused. Up: back to normal.
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }

    /// The next COMMIT reaches PostgreSQL, and then the connection is cut before
    /// its reply gets back.
    pub fn swallow_next_commit_reply(&self) {
        self.cut_after_commit.store(true, Ordering::SeqCst);
    }
}

/// Whether a connection has been muted.
struct Mute {
    id: u64,
    below: Arc<AtomicU64>,
}

impl Mute {
    /// Never returns once the connection is muted: what was read is not relayed.
    async fn hold_if_muted(&self) {
        if self.id < self.below.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
    }
}

async fn pipe(
    mut client: tokio::net::TcpStream,
    server: UnixStream,
    mut up: watch::Receiver<bool>,
    cut: Arc<AtomicBool>,
    swallowed: Arc<AtomicUsize>,
    mute: Mute,
) {
    let (mut sr, mut sw) = server.into_split();
    let (mut cr, mut cw) = client.split();
    // Set before a COMMIT goes out whose reply must never come back.
    let swallowing = AtomicBool::new(false);
    let to_server = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            mute.hold_if_muted().await;
            let chunk = &buf[..n];
            let commit = chunk.windows(COMMIT.len()).any(|w| w == COMMIT)
                && cut.swap(false, Ordering::SeqCst);
            if commit {
                swallowing.store(true, Ordering::SeqCst);
                swallowed.fetch_add(1, Ordering::SeqCst);
            }
            if sw.write_all(chunk).await.is_err() {
                return;
            }
            if commit {
                // Let PostgreSQL commit, then vanish: the reply is never relayed.
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                return;
            }
        }
    };
    let to_client = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            mute.hold_if_muted().await;
            if swallowing.load(Ordering::SeqCst) {
                // Hold the connection open (but mute) until the COMMIT has landed.
                std::future::pending::<()>().await;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    let down = async {
        while *up.borrow_and_update() {
            if up.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = to_server => {}
        _ = to_client => {}
        _ = down => {}
    }
}
