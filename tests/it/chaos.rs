//! A TCP proxy between chute and PostgreSQL that the tests can break on purpose:
//! cut every connection and refuse new ones (an outage), or swallow the reply to
//! the next COMMIT (the commit happened; chute never hears of it).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
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
}

impl ChaosProxy {
    /// Listens on a free loopback port and forwards to the PostgreSQL socket file.
    /// Runs on its own thread and runtime, so it outlives any one test runtime.
    pub fn start(socket: PathBuf) -> ChaosProxy {
        let (up, up_rx) = watch::channel(true);
        let cut_after_commit = Arc::new(AtomicBool::new(false));
        let swallowed = Arc::new(AtomicUsize::new(0));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        {
            let (cut, swallowed) = (cut_after_commit.clone(), swallowed.clone());
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
                        tokio::spawn(async move {
                            if let Ok(server) = UnixStream::connect(&socket).await {
                                pipe(client, server, up_rx, cut, swallowed).await;
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
        }
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

async fn pipe(
    mut client: tokio::net::TcpStream,
    server: UnixStream,
    mut up: watch::Receiver<bool>,
    cut: Arc<AtomicBool>,
    swallowed: Arc<AtomicUsize>,
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
