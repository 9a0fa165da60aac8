//! chute's own PostgreSQL cluster: created, started and supervised by chute.
//!
//! When no external shards are configured, chute keeps its data in a cluster of
//! its own under `<data_dir>/pg`. The test suite uses the same code for its
//! throw-away clusters, so everything here aims to be boring and robust:
//!
//! * `<dir>` is both PGDATA and the Unix-socket directory. TCP is off
//!   (`listen_addresses = ''`), and the directory is mode 0700, so only the
//!   server's OS user (and root) can reach the socket; that is why the cluster
//!   can use `trust` authentication.
//! * The postmaster is a child of a dedicated supervisor thread, not of whichever
//!   thread called [`EmbeddedPostgres::start`]. It gets `PR_SET_PDEATHSIG =
//!   SIGINT` (fast shutdown), and the kernel sends that signal when the *thread*
//!   that forked it ends, so the forking thread has to live exactly as long as
//!   the supervision does. If chute is killed with `SIGKILL`, PostgreSQL shuts
//!   itself down cleanly.
//! * The postmaster runs in its own process group, so a Ctrl-C in chute's
//!   terminal does not reach it; chute stops it itself, in order.
//! * Logs: the postmaster's own stderr (messages before its logging collector
//!   starts, i.e. most startup failures) goes to `<dir>/log/postmaster.log`,
//!   rewritten at every start; everything else goes to the daily, week-long
//!   rotation `<dir>/log/postgresql-<Mon..Sun>.log`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use tokio_postgres::NoTls;
use tracing::{debug, warn};

mod client;
mod host;
mod procs;
mod server;
mod supervisor;

use client::{client_config, describe_pg, dsn_for, quote_ident, validate_database_name};
use server::Server;
use supervisor::supervise;

/// The cluster's superuser, fixed with `initdb -U` so that it never depends on
/// which OS user ran initdb.
const SUPERUSER: &str = "postgres";
/// The database chute itself uses; created at the first start.
const CHUTE_DATABASE: &str = "chute";
/// Longest `sun_path` Linux accepts, without its terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1); longer ones are cut.
const MAX_IDENTIFIER: usize = 63;
/// Where Debian (and Ubuntu) install versioned server binaries.
const DEBIAN_PG_LIB: &str = "/usr/lib/postgresql";
/// How often the supervisor looks at its postmaster and its request queue.
const POLL: Duration = Duration::from_millis(100);
/// First delay before restarting a postmaster that died; doubled per failure.
const BACKOFF_START: Duration = Duration::from_millis(200);
/// Cap on the restart delay.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A postmaster that ran this long before dying restarts with the first delay
/// again; one that dies sooner keeps doubling it (no tight crash loop).
const STABLE_UPTIME: Duration = Duration::from_secs(30);
/// How long a fast shutdown (SIGINT) may take before we send SIGQUIT.
const FAST_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// How long an immediate shutdown (SIGQUIT) may take before we send SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(5);
/// How long SIGKILLed processes may take to disappear.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// Limit on one readiness probe (connect + authentication).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts of the first start (a leftover backend may briefly hold shared memory).
const FIRST_START_ATTEMPTS: u32 = 3;
/// Bytes read from the end of each log file for an error message.
const LOG_TAIL_BYTES: u64 = 3000;

/// Settings every embedded cluster starts with, before [`EmbeddedOptions::settings`]
/// (which come later on the command line and so win).
const BASE_SETTINGS: &[(&str, &str)] = &[
    // No TCP at all: the Unix socket in the 0700 data directory is the only way in.
    ("listen_addresses", ""),
    ("unix_socket_permissions", "0700"),
    // English messages, so that log tails in errors are readable and greppable.
    ("lc_messages", "C"),
    // Bulk COPY of logs writes a lot of WAL: checkpoint by time, not every 1 GB.
    ("max_wal_size", "2GB"),
    ("min_wal_size", "256MB"),
    ("checkpoint_timeout", "15min"),
    // Bounded logs inside the data directory: one file per weekday, overwritten
    // a week later.
    ("logging_collector", "on"),
    ("log_directory", "log"),
    ("log_filename", "postgresql-%a.log"),
    ("log_truncate_on_rotation", "on"),
    ("log_rotation_age", "1d"),
    ("log_rotation_size", "0"),
];

/// Environment variables that could make initdb or postgres use something other
/// than what we pass on the command line.
const SCRUBBED_ENV: &[&str] = &[
    "PGDATA",
    "PGPORT",
    "PGHOST",
    "PGHOSTADDR",
    "PGUSER",
    "PGDATABASE",
    "PGOPTIONS",
    "PGPASSWORD",
    "PGSERVICE",
    "PGSYSCONFDIR",
    "PGCLIENTENCODING",
    "PGTZ",
];

/// How to run the embedded cluster.
#[derive(Debug, Clone)]
pub struct EmbeddedOptions {
    /// Port number. Only used for the socket file name (`.s.PGSQL.<port>`):
    /// TCP is off (`listen_addresses = ''`), so any value is free to use.
    pub port: u16,
    /// OS user that runs initdb and PostgreSQL when chute runs as root, because
    /// PostgreSQL refuses to run as root. `None` means `postgres` if that user
    /// exists; chute stops when it does not. Ignored when chute is not root: then PostgreSQL
    /// runs as chute's own user.
    pub run_as: Option<String>,
    /// Extra server settings `(name, value)`, passed as `-c name=value` after
    /// chute's defaults, so they override them. Not written to the cluster's
    /// configuration files: they apply to this run only.
    pub settings: Vec<(String, String)>,
    /// How long [`EmbeddedPostgres::start`] and [`EmbeddedPostgres::restart`]
    /// wait for the server to accept connections (crash recovery of a large WAL
    /// can take long). Restarts after a crash wait as long as the server is alive.
    pub start_timeout: Duration,
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        Self {
            port: 5432,
            run_as: None,
            settings: Vec::new(),
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// Everything that can go wrong running the embedded cluster.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// No PostgreSQL server binaries: the package has to be installed.
    #[error(
        "PostgreSQL server binaries not found (looked for `postgres` and `initdb` in one \
         directory of PATH, then in {DEBIAN_PG_LIB}/<version>/bin); install them with \
         `apt-get install postgresql` (or `apt-get install postgresql-15`)"
    )]
    BinariesNotFound,
    /// The data directory was made by another major version than any installed.
    #[error(
        "the data directory was made by PostgreSQL {major}, and no PostgreSQL {major} \
         server binaries were found; install them with `apt-get install postgresql-{major}` \
         (another major version cannot open this data, and is never tried)"
    )]
    BinariesForDataNotFound {
        /// The major version in the data directory's `PG_VERSION`.
        major: String,
    },
    /// The data directory cannot be used as given.
    #[error("cannot use {dir} as PostgreSQL data directory: {reason}")]
    InvalidDataDir {
        /// The directory, as resolved to an absolute path.
        dir: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The Unix socket path would exceed the kernel's limit, so PostgreSQL could
    /// not create its socket.
    #[error(
        "Unix socket path {path} is {len} bytes long, but at most {max} are possible; \
         use a data directory with a shorter path"
    )]
    SocketPathTooLong {
        /// The socket path that would be used.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// An option in [`EmbeddedOptions`] is invalid.
    #[error("invalid embedded PostgreSQL option {name}: {reason}")]
    InvalidOption {
        /// The option or server setting concerned.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The OS user meant to run PostgreSQL cannot be used.
    #[error("cannot run PostgreSQL as OS user {user:?}: {reason}")]
    InvalidRunAs {
        /// The user name.
        user: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// A directory above the data directory does not let the server's OS user
    /// through, so PostgreSQL could not reach its data.
    #[error(
        "directory {dir} is not searchable by OS user {user:?}, which runs PostgreSQL; \
         allow it (e.g. `chmod o+x {dir}`) or choose a data directory elsewhere"
    )]
    NotTraversable {
        /// The first directory from the top that blocks the way.
        dir: PathBuf,
        /// The OS user that runs PostgreSQL.
        user: String,
    },
    /// The data directory holds files but no cluster; initdb would refuse it and
    /// we will not delete someone's files.
    #[error(
        "{dir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); \
         empty it or choose another data directory"
    )]
    DataDirNotEmpty {
        /// The data directory.
        dir: PathBuf,
    },
    /// A file-system or process operation failed.
    #[error("could not {action}: {source}")]
    Io {
        /// What was being done, e.g. `create directory /x`.
        action: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// initdb failed; its output says why.
    #[error("initdb failed ({status}):\n{output}")]
    Initdb {
        /// How it exited.
        status: String,
        /// The end of its stderr (or stdout when stderr was empty).
        output: String,
    },
    /// The postmaster exited while starting.
    #[error("PostgreSQL exited while starting ({status}); logs are in {log_dir}:\n{log_tail}")]
    StartFailed {
        /// How it exited.
        status: String,
        /// Where its logs are.
        log_dir: PathBuf,
        /// The end of the logs written during this start.
        log_tail: String,
    },
    /// The postmaster kept running but did not accept connections in time.
    #[error(
        "PostgreSQL did not accept connections within {timeout:?} (last error: {last_error}); \
         logs are in {log_dir}:\n{log_tail}"
    )]
    StartTimeout {
        /// The time waited.
        timeout: Duration,
        /// The last connection error.
        last_error: String,
        /// Where its logs are.
        log_dir: PathBuf,
        /// The end of the logs written during this start.
        log_tail: String,
    },
    /// A postmaster on this data directory is run by a live supervisor (another
    /// chute, or another handle in this process); stopping it would make the two
    /// fight.
    #[error(
        "PostgreSQL (pid {pid}) is already running on {dir}, started by process {parent} \
         which is still alive (another chute?); stop that first"
    )]
    DataDirInUse {
        /// The data directory.
        dir: PathBuf,
        /// The running postmaster.
        pid: i32,
        /// Its parent process.
        parent: i32,
    },
    /// Server processes of an earlier run would not go away, even after SIGKILL.
    #[error("PostgreSQL processes {pids:?} on {dir} did not exit after SIGKILL")]
    LeftoverProcesses {
        /// The data directory.
        dir: PathBuf,
        /// The processes still there.
        pids: Vec<i32>,
    },
    /// A database name PostgreSQL would reject or silently truncate.
    #[error("invalid database name {name:?}: {reason}")]
    InvalidDatabaseName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Talking to the running server failed.
    #[error("could not {action}: {}", describe_pg(.source))]
    Postgres {
        /// What was being done.
        action: String,
        /// The client error (carries the server's message).
        #[source]
        source: tokio_postgres::Error,
    },
    /// The supervisor is shutting down or has ended, so it cannot do what was asked.
    #[error("the embedded PostgreSQL supervisor has stopped")]
    Stopped,
}

/// Shorthand to wrap an [`io::Error`] with what was being done.
fn io_err(action: impl Into<String>) -> impl FnOnce(io::Error) -> EmbeddedError {
    let action = action.into();
    move |source| EmbeddedError::Io { action, source }
}

/// A running, supervised embedded PostgreSQL cluster.
///
/// Dropping it stops PostgreSQL like [`EmbeddedPostgres::shutdown`] does. A
/// handle that is never dropped (e.g. in a `static OnceLock`) is still cleaned
/// up: when the process exits, the supervisor thread ends and the kernel sends
/// the postmaster SIGINT (fast shutdown). The handle is `Send + Sync`.
pub struct EmbeddedPostgres {
    /// Absolute data directory, also the socket directory.
    dir: PathBuf,
    /// `<dir>/log`.
    log_dir: PathBuf,
    /// Socket port number.
    port: u16,
    /// State the supervisor publishes.
    shared: Arc<Shared>,
    /// Requests to the supervisor thread.
    requests: mpsc::Sender<Request>,
    /// The supervisor thread; `None` once shut down.
    supervisor: Option<JoinHandle<()>>,
}

impl fmt::Debug for EmbeddedPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedPostgres")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("running", &self.is_running())
            .field("restarts", &self.restarts())
            .finish()
    }
}

/// State shared between the handle and the supervisor thread.
#[derive(Default)]
struct Shared {
    /// The postmaster accepts connections (as far as the supervisor knows).
    running: AtomicBool,
    /// Restarts after the postmaster died on its own.
    restarts: AtomicU64,
    /// Current postmaster pid, 0 if none.
    pid: AtomicU32,
    /// Shutdown requested: abandon any start in progress.
    stopping: AtomicBool,
}

/// What the handle asks of the supervisor; each carries the reply channel.
enum Request {
    /// Fast shutdown, then start again.
    Restart(mpsc::Sender<Result<(), EmbeddedError>>),
    /// Fast shutdown (for at most the given time, then SIGQUIT, then SIGKILL) and
    /// end supervision.
    Shutdown(mpsc::Sender<Result<(), EmbeddedError>>, Duration),
}

impl EmbeddedPostgres {
    /// Starts (creating it first if needed) the cluster in `dir` and supervises
    /// it from a dedicated thread. Blocking; does not need a tokio runtime.
    ///
    /// Finds the server binaries, runs initdb if `dir` holds no cluster yet,
    /// stops PostgreSQL processes an earlier, killed chute left on `dir`, starts
    /// the postmaster, waits until it accepts connections and creates database
    /// `chute` if missing. From then on a postmaster that exits on its own is
    /// started again.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::BinariesNotFound`] without PostgreSQL installed;
    /// [`EmbeddedError::InvalidDataDir`], [`EmbeddedError::SocketPathTooLong`],
    /// [`EmbeddedError::InvalidOption`], [`EmbeddedError::InvalidRunAs`],
    /// [`EmbeddedError::NotTraversable`], [`EmbeddedError::DataDirNotEmpty`] for
    /// unusable arguments; [`EmbeddedError::Initdb`],
    /// [`EmbeddedError::StartFailed`], [`EmbeddedError::StartTimeout`],
    /// [`EmbeddedError::DataDirInUse`], [`EmbeddedError::LeftoverProcesses`],
    /// [`EmbeddedError::Postgres`] and [`EmbeddedError::Io`] when setting up or
    /// starting the server fails.
    pub fn start(dir: &Path, opts: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let server = Server::prepare(dir, opts)?;
        let dir = server.dir.clone();
        let log_dir = server.log_dir.clone();
        let port = server.port;
        let shared = Arc::new(Shared::default());
        let (request_tx, request_rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let thread_shared = Arc::clone(&shared);
        let supervisor = thread::Builder::new()
            .name("chute-postgres".into())
            .spawn(move || supervise(server, thread_shared, request_rx, ready_tx))
            .map_err(io_err("spawn the PostgreSQL supervisor thread"))?;
        let first = ready_rx.recv().unwrap_or(Err(EmbeddedError::Stopped));
        if let Err(e) = first {
            // The thread has already stopped whatever it started; wait for it.
            let _ = supervisor.join();
            return Err(e);
        }
        Ok(Self {
            dir,
            log_dir,
            port,
            shared,
            requests: request_tx,
            supervisor: Some(supervisor),
        })
    }

    /// The Unix-socket directory (the data directory), for clients' `host`.
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The data directory (same as [`Self::socket_dir`]), for tools and backups.
    pub fn data_dir(&self) -> &Path {
        &self.dir
    }

    /// Where PostgreSQL's logs are, to point people at them.
    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The port, i.e. the socket file's suffix, for clients' `port`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The role to connect as: the cluster's superuser, always `postgres`
    /// (initdb `-U postgres`), whatever OS user runs the server.
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// A libpq key=value connection string for database `dbname`, which
    /// `tokio_postgres::Config::from_str` (and libpq) accept:
    /// `host='<socket dir>' port=<port> user=postgres dbname='<dbname>'`.
    /// Values are single-quoted with `\` escapes, so paths with spaces or quotes
    /// are fine.
    pub fn dsn(&self, dbname: &str) -> String {
        dsn_for(&self.dir, self.port, dbname)
    }

    /// A ready-made client configuration for database `dbname`, the same as
    /// [`Self::dsn`] without the parsing.
    pub fn config(&self, dbname: &str) -> tokio_postgres::Config {
        client_config(&self.dir, self.port, dbname)
    }

    /// Creates database `name` (the test suite uses one fresh database per test).
    /// Needs a tokio runtime with I/O and time enabled.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::InvalidDatabaseName`] for an empty, NUL-containing or
    /// longer than 63 bytes name; [`EmbeddedError::Postgres`] if the server
    /// cannot be reached or refuses (e.g. the database already exists).
    pub async fn create_database(&self, name: &str) -> Result<(), EmbeddedError> {
        validate_database_name(name)?;
        let config = self.config("postgres");
        let (client, connection) =
            config
                .connect(NoTls)
                .await
                .map_err(|source| EmbeddedError::Postgres {
                    action: "connect to the embedded PostgreSQL".into(),
                    source,
                })?;
        let driver = tokio::spawn(async move {
            if let Err(e) = connection.await {
                debug!(error = %e, "embedded PostgreSQL admin connection ended with an error");
            }
        });
        let result = client
            .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
            .await
            .map_err(|source| EmbeddedError::Postgres {
                action: format!("create database {name:?}"),
                source,
            });
        drop(client);
        let _ = driver.await;
        result
    }

    /// How many times the supervisor brought back a postmaster that died on its
    /// own (counted once the new one accepts connections); [`Self::restart`] does
    /// not count.
    pub fn restarts(&self) -> u64 {
        self.shared.restarts.load(Ordering::SeqCst)
    }

    /// Whether the postmaster is up and was accepting connections; false while
    /// it is being (re)started or is down.
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::SeqCst)
    }

    /// The current postmaster's pid, if one is running (e.g. for tests that kill it).
    pub fn pid(&self) -> Option<u32> {
        match self.shared.pid.load(Ordering::SeqCst) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Fast shutdown (SIGINT) of the postmaster, then starts it again and waits
    /// until it accepts connections; for tests that restart PostgreSQL under load.
    /// Blocking. Not counted in [`Self::restarts`].
    ///
    /// # Errors
    ///
    /// The start errors of [`Self::start`] (the supervisor then keeps trying to
    /// start it, with backoff), or [`EmbeddedError::Stopped`] if the supervisor
    /// has stopped.
    pub fn restart(&self) -> Result<(), EmbeddedError> {
        let (tx, rx) = mpsc::channel();
        self.requests
            .send(Request::Restart(tx))
            .map_err(|_| EmbeddedError::Stopped)?;
        rx.recv().unwrap_or(Err(EmbeddedError::Stopped))
    }

    /// Stops supervising and shuts PostgreSQL down: SIGINT (fast shutdown), then
    /// after 30 s SIGQUIT, after 5 s more SIGKILL. Blocking; returns once no
    /// server process is left.
    ///
    /// # Errors
    ///
    /// [`EmbeddedError::Io`] or [`EmbeddedError::LeftoverProcesses`] if the
    /// server could not be signalled or would not exit, and
    /// [`EmbeddedError::Stopped`] if the supervisor thread had died (its
    /// postmaster then got SIGINT from the kernel).
    pub fn shutdown(self) -> Result<(), EmbeddedError> {
        self.shutdown_within(FAST_SHUTDOWN_GRACE)
    }

    /// [`Self::shutdown`], giving fast shutdown at most `fast` (then SIGQUIT, and
    /// SIGKILL 5 s later): for a caller with a deadline of its own.
    ///
    /// # Errors
    /// As [`Self::shutdown`].
    pub fn shutdown_within(mut self, fast: Duration) -> Result<(), EmbeddedError> {
        self.stop(fast)
    }

    /// Shutdown shared by [`Self::shutdown`] and `Drop`; a no-op the second time.
    fn stop(&mut self, fast: Duration) -> Result<(), EmbeddedError> {
        let Some(supervisor) = self.supervisor.take() else {
            return Ok(());
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let result = match self.requests.send(Request::Shutdown(tx, fast)) {
            Ok(()) => rx.recv().unwrap_or(Err(EmbeddedError::Stopped)),
            Err(_) => Err(EmbeddedError::Stopped),
        };
        let joined = supervisor.join();
        self.shared.running.store(false, Ordering::SeqCst);
        match (result, joined) {
            (Err(e), _) => Err(e),
            (Ok(()), Err(_)) => Err(EmbeddedError::Stopped),
            (Ok(()), Ok(())) => Ok(()),
        }
    }
}

impl Drop for EmbeddedPostgres {
    fn drop(&mut self) {
        if let Err(e) = self.stop(FAST_SHUTDOWN_GRACE) {
            warn!(error = %e, dir = %self.dir.display(), "stopping embedded PostgreSQL failed");
        }
    }
}

#[cfg(test)]
mod tests;
