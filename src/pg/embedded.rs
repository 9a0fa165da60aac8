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
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::{Gid, Pid, Uid, User};
use tokio::runtime::Runtime;
use tokio_postgres::NoTls;
use tracing::{debug, info, warn};

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
    /// exists, else `nobody`. Ignored when chute is not root: then PostgreSQL
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

/// A client error with the server's message (tokio-postgres's own `Display`
/// only says "db error").
fn describe_pg(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return db.to_string();
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
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
    /// Fast shutdown and end supervision.
    Shutdown(mpsc::Sender<Result<(), EmbeddedError>>),
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
    pub fn shutdown(mut self) -> Result<(), EmbeddedError> {
        self.stop()
    }

    /// Shutdown shared by [`Self::shutdown`] and `Drop`; a no-op the second time.
    fn stop(&mut self) -> Result<(), EmbeddedError> {
        let Some(supervisor) = self.supervisor.take() else {
            return Ok(());
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        let (tx, rx) = mpsc::channel();
        let result = match self.requests.send(Request::Shutdown(tx)) {
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
        if let Err(e) = self.stop() {
            warn!(error = %e, dir = %self.dir.display(), "stopping embedded PostgreSQL failed");
        }
    }
}

/// The server binaries to use.
#[derive(Debug, Clone)]
struct Binaries {
    /// `postgres`.
    postgres: PathBuf,
    /// `initdb`, from the same directory so versions match.
    initdb: PathBuf,
}

/// The OS user PostgreSQL runs as when chute is root.
#[derive(Debug, Clone)]
struct Owner {
    /// User name, for messages.
    name: String,
    /// Its uid.
    uid: Uid,
    /// Its primary gid (std drops supplementary groups when it sets the uid).
    gid: Gid,
}

/// Everything needed to run one cluster; owned by the supervisor thread.
struct Server {
    /// Absolute data/socket directory.
    dir: PathBuf,
    /// `dir` with symlinks resolved, as `/proc/<pid>/cwd` shows it.
    canonical_dir: PathBuf,
    /// `<dir>/log`.
    log_dir: PathBuf,
    /// Server binaries.
    bins: Binaries,
    /// Socket port.
    port: u16,
    /// Who runs the server when we are root.
    owner: Option<Owner>,
    /// Caller's extra settings.
    settings: Vec<(String, String)>,
    /// Time allowed for a requested start.
    start_timeout: Duration,
}

impl Server {
    /// Validates the arguments, finds the binaries, creates and initialises the
    /// cluster if needed and fixes ownership: everything up to starting it.
    fn prepare(dir: &Path, opts: EmbeddedOptions) -> Result<Self, EmbeddedError> {
        let dir = std::path::absolute(dir)
            .map_err(io_err(format!("resolve data directory {}", dir.display())))?;
        let invalid = |reason: &str| EmbeddedError::InvalidDataDir {
            dir: dir.clone(),
            reason: reason.into(),
        };
        let Some(dir_str) = dir.to_str() else {
            return Err(invalid(
                "the path is not valid UTF-8, which connection strings need",
            ));
        };
        if dir_str.contains(',') {
            return Err(invalid(
                "the path contains a comma, which separates hosts in connection strings",
            ));
        }
        if dir_str.contains(['\n', '\r']) {
            return Err(invalid("the path contains a line break"));
        }
        if opts.port == 0 {
            return Err(EmbeddedError::InvalidOption {
                name: "port".into(),
                reason: "must be between 1 and 65535".into(),
            });
        }
        let socket = dir.join(format!(".s.PGSQL.{}", opts.port));
        let len = socket.as_os_str().len();
        if len > MAX_SOCKET_PATH {
            return Err(EmbeddedError::SocketPathTooLong {
                path: socket,
                len,
                max: MAX_SOCKET_PATH,
            });
        }
        for (name, value) in &opts.settings {
            validate_setting(name, value)?;
        }
        let bins = find_binaries()?;
        let owner = if nix::unistd::geteuid().is_root() {
            Some(resolve_owner(opts.run_as.as_deref())?)
        } else {
            None
        };

        match fs::metadata(&dir) {
            Ok(md) if md.is_dir() => {}
            Ok(_) => return Err(invalid("it exists and is not a directory")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir_all(&dir)
                    .map_err(io_err(format!("create directory {}", dir.display())))?;
                fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err(format!("chmod 0700 {}", dir.display())))?;
            }
            Err(e) => return Err(io_err(format!("inspect {}", dir.display()))(e)),
        }
        if let Some(owner) = &owner {
            check_traversable(&dir, owner)?;
            chown_tree(&dir, owner)?;
        }
        let canonical_dir = fs::canonicalize(&dir)
            .map_err(io_err(format!("resolve symlinks in {}", dir.display())))?;
        let server = Self {
            log_dir: dir.join("log"),
            dir,
            canonical_dir,
            bins,
            port: opts.port,
            owner,
            settings: opts.settings,
            start_timeout: opts.start_timeout,
        };
        if server.dir.join("PG_VERSION").exists() {
            debug!(dir = %server.dir.display(), "reusing existing PostgreSQL cluster");
        } else {
            server.initdb()?;
        }
        server.ensure_log_dir()?;
        Ok(server)
    }

    /// Runs initdb on the (empty) data directory.
    fn initdb(&self) -> Result<(), EmbeddedError> {
        let mut entries = fs::read_dir(&self.dir)
            .map_err(io_err(format!("list directory {}", self.dir.display())))?;
        if entries.next().is_some() {
            return Err(EmbeddedError::DataDirNotEmpty {
                dir: self.dir.clone(),
            });
        }
        info!(dir = %self.dir.display(), initdb = %self.bins.initdb.display(),
            "creating PostgreSQL cluster");
        // initdb works in a sibling directory that is renamed into place once it
        // succeeded: a chute killed mid-initdb leaves no half-made cluster behind,
        // only this scratch directory, which the next attempt removes.
        let name = self.dir.file_name().unwrap_or_default().to_string_lossy();
        let scratch = self.dir.with_file_name(format!(".{name}.initdb"));
        if scratch.exists() {
            fs::remove_dir_all(&scratch)
                .map_err(io_err(format!("remove {}", scratch.display())))?;
        }
        fs::create_dir(&scratch).map_err(io_err(format!("create {}", scratch.display())))?;
        fs::set_permissions(&scratch, fs::Permissions::from_mode(0o700))
            .map_err(io_err(format!("chmod 0700 {}", scratch.display())))?;
        if let Some(owner) = &self.owner {
            lchown_if_needed(&scratch, owner)?;
        }
        let mut cmd = Command::new(&self.bins.initdb);
        // trust is safe: there is no TCP listener, and the only socket lives in
        // the data directory, which PostgreSQL requires to be 0700 (0750 at most).
        cmd.arg("-D")
            .arg(&scratch)
            .args(["-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--locale=C"])
            .stdin(Stdio::null());
        self.configure(&mut cmd);
        let out = cmd
            .output()
            .map_err(io_err(format!("run {}", self.bins.initdb.display())))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let text = if stderr.trim().is_empty() {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                stderr.into_owned()
            };
            return Err(EmbeddedError::Initdb {
                status: out.status.to_string(),
                output: last_lines(text.trim(), 30),
            });
        }
        fs::remove_dir(&self.dir)
            .map_err(io_err(format!("remove empty {}", self.dir.display())))?;
        fs::rename(&scratch, &self.dir).map_err(io_err(format!(
            "rename {} to {}",
            scratch.display(),
            self.dir.display()
        )))?;
        Ok(())
    }

    /// Creates `<dir>/log` for the postmaster's stderr file.
    fn ensure_log_dir(&self) -> Result<(), EmbeddedError> {
        if !self.log_dir.is_dir() {
            fs::create_dir(&self.log_dir).map_err(io_err(format!(
                "create directory {}",
                self.log_dir.display()
            )))?;
            fs::set_permissions(&self.log_dir, fs::Permissions::from_mode(0o700))
                .map_err(io_err(format!("chmod 0700 {}", self.log_dir.display())))?;
        }
        if let Some(owner) = &self.owner {
            lchown_if_needed(&self.log_dir, owner)?;
        }
        Ok(())
    }

    /// What initdb and postgres have in common: user, working directory, environment.
    fn configure(&self, cmd: &mut Command) {
        for var in SCRUBBED_ENV {
            cmd.env_remove(var);
        }
        cmd.env("LC_ALL", "C").current_dir(&self.dir);
        if let Some(owner) = &self.owner {
            // HOME may be unreadable for the server user (root's, or /nonexistent
            // for nobody): point it at the data directory it owns.
            cmd.uid(owner.uid.as_raw())
                .gid(owner.gid.as_raw())
                .env("HOME", &self.dir)
                .env("USER", &owner.name)
                .env("LOGNAME", &owner.name);
        }
    }

    /// The postmaster command line, its output going to `log`.
    fn postmaster_command(&self, log: &File) -> Result<Command, EmbeddedError> {
        let stdout = log
            .try_clone()
            .map_err(io_err("duplicate the PostgreSQL log file handle"))?;
        let stderr = log
            .try_clone()
            .map_err(io_err("duplicate the PostgreSQL log file handle"))?;
        let mut cmd = Command::new(&self.bins.postgres);
        // unix_socket_directories is a list: quote the entry so that it is taken whole.
        let socket_dir = format!("\"{}\"", self.dir.to_string_lossy().replace('"', "\"\""));
        cmd.arg("-D")
            .arg(&self.dir)
            .arg("-k")
            .arg(socket_dir)
            .arg("-p")
            .arg(self.port.to_string());
        let extra = self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        for (name, value) in BASE_SETTINGS.iter().copied().chain(extra) {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.stdin(Stdio::null()).stdout(stdout).stderr(stderr);
        self.configure(&mut cmd);
        // Own process group: a Ctrl-C in chute's terminal must not reach the
        // server; chute shuts it down itself.
        cmd.process_group(0);
        let parent = nix::unistd::getpid();
        // SAFETY: the closure only makes async-signal-safe syscalls (prctl,
        // getppid) and builds io::Errors from errno values, which does not allocate.
        unsafe {
            cmd.pre_exec(move || {
                // std runs pre_exec closures after setgid/setuid, so this is not
                // cleared by the credential change (and exec of a non-setuid
                // binary keeps it). SIGINT = fast shutdown. It fires when the
                // forking *thread* ends, hence the dedicated supervisor thread.
                nix::sys::prctl::set_pdeathsig(Signal::SIGINT).map_err(io::Error::from)?;
                // If chute died between fork and prctl, nobody would signal us.
                if nix::unistd::getppid() != parent {
                    return Err(io::Error::from(Errno::ESRCH));
                }
                Ok(())
            });
        }
        Ok(cmd)
    }

    /// Starts a postmaster and waits until it accepts connections. With a
    /// `deadline`, gives up then; without, waits as long as the postmaster lives
    /// (crash recovery), warning now and then. Gives up when shutdown is requested.
    fn launch(
        &self,
        rt: &Runtime,
        shared: &Shared,
        deadline: Option<Instant>,
    ) -> Result<Child, EmbeddedError> {
        self.clear_leftovers()?;
        let log_path = self.log_dir.join("postmaster.log");
        let log = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&log_path)
            .map_err(io_err(format!("open {}", log_path.display())))?;
        if let Some(owner) = &self.owner {
            std::os::unix::fs::fchown(&log, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
                .map_err(io_err(format!("chown {}", log_path.display())))?;
        }
        let mut cmd = self.postmaster_command(&log)?;
        drop(log);
        let spawned_at = SystemTime::now();
        let began = Instant::now();
        let mut child = cmd
            .spawn()
            .map_err(io_err(format!("start {}", self.bins.postgres.display())))?;
        shared.pid.store(child.id(), Ordering::SeqCst);
        debug!(pid = child.id(), dir = %self.dir.display(), "PostgreSQL postmaster spawned");
        let mut last_warning = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => {
                    shared.pid.store(0, Ordering::SeqCst);
                    return Err(EmbeddedError::StartFailed {
                        status: status.to_string(),
                        log_dir: self.log_dir.clone(),
                        log_tail: self.log_tail(spawned_at),
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    let _ = self.stop_child(&mut child, shared);
                    return Err(io_err("wait for the PostgreSQL postmaster")(e));
                }
            }
            if shared.stopping.load(Ordering::SeqCst) {
                self.stop_child(&mut child, shared)?;
                return Err(EmbeddedError::Stopped);
            }
            let last_error = match probe(rt, &self.dir, self.port) {
                Ok(()) => {
                    info!(pid = child.id(), dir = %self.dir.display(),
                        elapsed_ms = began.elapsed().as_millis() as u64,
                        "PostgreSQL accepts connections");
                    return Ok(child);
                }
                Err(e) => e,
            };
            match deadline {
                Some(deadline) if Instant::now() >= deadline => {
                    self.stop_child(&mut child, shared)?;
                    return Err(EmbeddedError::StartTimeout {
                        timeout: began.elapsed(),
                        last_error,
                        log_dir: self.log_dir.clone(),
                        log_tail: self.log_tail(spawned_at),
                    });
                }
                Some(_) => {}
                None => {
                    if last_warning.elapsed() >= self.start_timeout {
                        warn!(pid = child.id(), waited_s = began.elapsed().as_secs(),
                            last_error = %last_error,
                            "PostgreSQL is alive but does not accept connections yet (recovery?)");
                        last_warning = Instant::now();
                    }
                }
            }
            thread::sleep(POLL);
        }
    }

    /// Stops our postmaster: SIGINT, then SIGQUIT, then SIGKILL, and reaps it;
    /// then kills any server process that outlived it.
    fn stop_child(&self, child: &mut Child, shared: &Shared) -> Result<(), EmbeddedError> {
        shared.running.store(false, Ordering::SeqCst);
        let pid = child.id();
        let result = (|| -> io::Result<()> {
            // The child is not reaped until try_wait/wait says so, so its pid
            // cannot have been reused: signalling it is safe.
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            signal(pid_of(pid), Signal::SIGINT)?;
            if wait_child(child, FAST_SHUTDOWN_GRACE)? {
                return Ok(());
            }
            warn!(
                pid,
                "PostgreSQL fast shutdown took over {FAST_SHUTDOWN_GRACE:?}; sending SIGQUIT"
            );
            signal(pid_of(pid), Signal::SIGQUIT)?;
            if wait_child(child, QUIT_GRACE)? {
                return Ok(());
            }
            warn!(
                pid,
                "PostgreSQL ignored SIGQUIT for {QUIT_GRACE:?}; sending SIGKILL"
            );
            signal(pid_of(pid), Signal::SIGKILL)?;
            child.wait()?;
            Ok(())
        })();
        shared.pid.store(0, Ordering::SeqCst);
        result.map_err(io_err(format!("stop PostgreSQL (pid {pid})")))?;
        self.kill_remaining()
    }

    /// Makes sure no server process of an earlier run is left on our data
    /// directory before we start one, and removes stale lock files.
    ///
    /// A postmaster that survived an earlier chute is stopped rather than adopted:
    /// it is not our child, so we could neither wait for it nor tie its life to
    /// ours with PDEATHSIG, and it may run with other settings. One whose parent
    /// is still alive and looks like a supervisor (this process, or a process
    /// with our name) is left alone and reported instead.
    fn clear_leftovers(&self) -> Result<(), EmbeddedError> {
        let procs = self.server_processes();
        if !procs.is_empty() {
            // The postmaster is the process postmaster.pid names. Anything else is
            // a child (a just-forked one still shows the postmaster's command
            // line), orphaned if its postmaster is gone: those just get SIGKILL.
            let recorded = read_lock_pid(&self.dir.join("postmaster.pid"));
            let postmasters: Vec<&ProcInfo> = procs
                .iter()
                .filter(|p| Some(p.pid) == recorded && !p.is_child)
                .collect();
            for pm in &postmasters {
                if has_live_supervisor(pm.ppid) {
                    return Err(EmbeddedError::DataDirInUse {
                        dir: self.dir.clone(),
                        pid: pm.pid,
                        parent: pm.ppid,
                    });
                }
            }
            if !postmasters.is_empty() {
                warn!(pids = ?postmasters.iter().map(|p| p.pid).collect::<Vec<_>>(),
                    dir = %self.dir.display(),
                    "PostgreSQL left running by an earlier run; stopping it (fast shutdown)");
                for pm in &postmasters {
                    let _ = signal(Pid::from_raw(pm.pid), Signal::SIGINT);
                }
                if !self.wait_no_processes(FAST_SHUTDOWN_GRACE) {
                    for pm in &postmasters {
                        let _ = signal(Pid::from_raw(pm.pid), Signal::SIGQUIT);
                    }
                    self.wait_no_processes(QUIT_GRACE);
                }
            }
            self.kill_remaining()?;
        }
        self.remove_stale_lock_files();
        Ok(())
    }

    /// SIGKILLs every server process still on our data directory (backends
    /// orphaned by a killed postmaster keep its shared memory, so a new
    /// postmaster would refuse to start) and waits until they are gone.
    fn kill_remaining(&self) -> Result<(), EmbeddedError> {
        let procs = self.server_processes();
        if procs.is_empty() {
            return Ok(());
        }
        warn!(pids = ?procs.iter().map(|p| p.pid).collect::<Vec<_>>(),
            "killing leftover PostgreSQL processes");
        for p in &procs {
            let _ = signal(Pid::from_raw(p.pid), Signal::SIGKILL);
        }
        if self.wait_no_processes(KILL_GRACE) {
            Ok(())
        } else {
            Err(EmbeddedError::LeftoverProcesses {
                dir: self.dir.clone(),
                pids: self.server_processes().iter().map(|p| p.pid).collect(),
            })
        }
    }

    /// Polls until no server process is on our data directory; false on timeout.
    fn wait_no_processes(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.server_processes().is_empty() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Live PostgreSQL processes (postmaster or its children) whose working
    /// directory is our data directory; PostgreSQL chdirs there at start, so this
    /// finds a cluster's processes whatever their command line says.
    fn server_processes(&self) -> Vec<ProcInfo> {
        server_processes(&self.canonical_dir)
    }

    /// Removes `postmaster.pid` and the socket lock file when no server process
    /// runs on the directory. PostgreSQL ignores a lock file whose pid is dead,
    /// but after a reboot or in a container the pid is often reused by an
    /// unrelated live process, and then it refuses to start.
    fn remove_stale_lock_files(&self) {
        for name in [
            "postmaster.pid".to_string(),
            format!(".s.PGSQL.{}.lock", self.port),
        ] {
            let path = self.dir.join(&name);
            if !path.exists() {
                continue;
            }
            let pid = read_lock_pid(&path);
            // A live postgres process we could not see (another user's, whose cwd
            // we cannot read): leave the decision to PostgreSQL.
            if let Some(pid) = pid {
                if pid > 0 && is_postgres_comm(&proc_comm(pid).unwrap_or_default()) {
                    continue;
                }
            }
            match fs::remove_file(&path) {
                Ok(()) => info!(file = %path.display(), "removed stale PostgreSQL lock file"),
                Err(e) => warn!(file = %path.display(), error = %e,
                    "could not remove stale PostgreSQL lock file"),
            }
        }
    }

    /// The end of the logs written since `since`: the postmaster's stderr file
    /// and the newest collector file, for error messages.
    fn log_tail(&self, since: SystemTime) -> String {
        let mut files = vec![self.log_dir.join("postmaster.log")];
        let newest = fs::read_dir(&self.log_dir).ok().and_then(|entries| {
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("postgresql-"))
                .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
                .filter(|(modified, _)| *modified >= since)
                .max()
        });
        files.extend(newest.map(|(_, path)| path));
        let mut out = String::new();
        for path in files {
            if let Some(text) = tail_of_file(&path, LOG_TAIL_BYTES) {
                out.push_str(&format!("--- {} ---\n{}\n", path.display(), text));
            }
        }
        if out.is_empty() {
            out.push_str("(no log output)");
        }
        out
    }
}

/// A server process found in /proc.
#[derive(Debug, Clone)]
struct ProcInfo {
    /// Its pid.
    pid: i32,
    /// Its parent's pid.
    ppid: i32,
    /// A postmaster child (its title starts with `postgres: `), not a postmaster.
    is_child: bool,
}

/// See [`Server::server_processes`].
fn server_processes(canonical_dir: &Path) -> Vec<ProcInfo> {
    let own = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<i32>().ok())
        else {
            continue;
        };
        if pid <= 0 || pid as u32 == own {
            continue;
        }
        let Some(comm) = proc_comm(pid) else { continue };
        if !is_postgres_comm(&comm) {
            continue;
        }
        // Zombies have no cwd: they are gone for our purposes.
        match fs::read_link(entry.path().join("cwd")) {
            Ok(cwd) if cwd == canonical_dir => {}
            _ => continue,
        }
        let Some(ppid) = proc_ppid(pid) else { continue };
        let is_child = fs::read(entry.path().join("cmdline"))
            .map(|c| c.starts_with(b"postgres: "))
            .unwrap_or(false);
        found.push(ProcInfo {
            pid,
            ppid,
            is_child,
        });
    }
    found
}

/// The pid on the first line of a PostgreSQL lock file.
fn read_lock_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether `ppid` looks like a live supervisor of a postmaster: this very
/// process, or a process with our executable name (another chute). Orphans are
/// adopted by init or a subreaper, which have other names.
fn has_live_supervisor(ppid: i32) -> bool {
    if ppid <= 1 {
        return false;
    }
    if ppid as u32 == std::process::id() {
        return true;
    }
    match (proc_comm(ppid), proc_comm(std::process::id() as i32)) {
        (Some(parent), Some(own)) => parent == own,
        _ => false,
    }
}

/// `/proc/<pid>/comm` without the newline.
fn proc_comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

/// The parent pid from `/proc/<pid>/stat` (the field after the state, after
/// the parenthesised command name, which may itself contain spaces or parens).
fn proc_ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a process name is a PostgreSQL server's.
fn is_postgres_comm(comm: &str) -> bool {
    comm == "postgres" || comm == "postmaster"
}

/// Sends `sig`; a process that is already gone is not an error.
fn signal(pid: Pid, sig: Signal) -> io::Result<()> {
    match kill(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// A child's pid as nix wants it. Pids fit in i32 (the kernel's pid_t).
fn pid_of(pid: u32) -> Pid {
    Pid::from_raw(pid as i32)
}

/// Waits up to `timeout` for `child` to exit; true if it did (and is reaped).
fn wait_child(child: &mut Child, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The supervisor thread: first start, then the watch loop. The postmaster is
/// this thread's child, so this thread must not end while it runs (PDEATHSIG).
fn supervise(
    server: Server,
    shared: Arc<Shared>,
    requests: mpsc::Receiver<Request>,
    ready: mpsc::Sender<Result<(), EmbeddedError>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(io_err("create the supervisor's tokio runtime")(e)));
            return;
        }
    };
    let child = match first_start(&server, &rt, &shared) {
        Ok(child) => child,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    shared.running.store(true, Ordering::SeqCst);
    let mut supervisor = Supervisor {
        server,
        shared,
        rt,
        child: Some(child),
        started: Instant::now(),
        backoff: BACKOFF_START,
        next_attempt: None,
        crashed: false,
    };
    if ready.send(Ok(())).is_err() {
        // Nobody waits for us any more (cannot happen: start() blocks on it).
        let _ = supervisor.stop();
        return;
    }
    supervisor.run(&requests);
}

/// The first start: a few attempts (a leftover from a killed predecessor may
/// briefly hold shared memory), then database `chute`.
fn first_start(server: &Server, rt: &Runtime, shared: &Shared) -> Result<Child, EmbeddedError> {
    let deadline = Instant::now() + server.start_timeout;
    let mut backoff = BACKOFF_START;
    let mut attempt = 1;
    let mut child = loop {
        match server.launch(rt, shared, Some(deadline)) {
            Ok(child) => break child,
            Err(e @ EmbeddedError::StartFailed { .. })
                if attempt < FIRST_START_ATTEMPTS && Instant::now() + backoff < deadline =>
            {
                warn!(error = %e, attempt, "PostgreSQL failed to start; retrying in {backoff:?}");
                thread::sleep(backoff);
                backoff = (backoff * 2).min(BACKOFF_MAX);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    };
    if let Err(e) = ensure_database(rt, &server.dir, server.port, CHUTE_DATABASE) {
        let _ = server.stop_child(&mut child, shared);
        return Err(e);
    }
    Ok(child)
}

/// The supervisor's state after the first start.
struct Supervisor {
    /// The cluster.
    server: Server,
    /// What the handle reads.
    shared: Arc<Shared>,
    /// For readiness probes.
    rt: Runtime,
    /// The postmaster, if one runs.
    child: Option<Child>,
    /// When the current postmaster became ready.
    started: Instant,
    /// Delay before the next restart attempt.
    backoff: Duration,
    /// When to try starting again, while down.
    next_attempt: Option<Instant>,
    /// The postmaster died on its own and has not been brought back yet.
    crashed: bool,
}

impl Supervisor {
    /// Serves requests and restarts a postmaster that died, until shutdown.
    fn run(&mut self, requests: &mpsc::Receiver<Request>) {
        loop {
            match requests.recv_timeout(POLL) {
                Ok(Request::Shutdown(reply)) => {
                    let _ = reply.send(self.stop());
                    return;
                }
                Ok(Request::Restart(reply)) => {
                    let _ = reply.send(self.restart());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.stop();
                    return;
                }
            }
            self.watch();
            self.relaunch_if_due();
        }
    }

    /// Notices a postmaster that exited on its own.
    fn watch(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        let status = match child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => return,
            Err(e) => {
                warn!(error = %e, "cannot check the PostgreSQL postmaster; assuming it died");
                format!("unknown: {e}")
            }
        };
        self.child = None;
        self.shared.running.store(false, Ordering::SeqCst);
        self.shared.pid.store(0, Ordering::SeqCst);
        self.crashed = true;
        if self.started.elapsed() >= STABLE_UPTIME {
            self.backoff = BACKOFF_START;
        }
        warn!(%status, dir = %self.server.dir.display(), log_dir = %self.server.log_dir.display(),
            "PostgreSQL exited unexpectedly; restarting in {:?}", self.backoff);
        self.schedule_attempt();
    }

    /// Sets the next start attempt one backoff from now and doubles the backoff.
    fn schedule_attempt(&mut self) {
        self.next_attempt = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Starts the postmaster again when it is down and the backoff has passed.
    fn relaunch_if_due(&mut self) {
        match self.next_attempt {
            Some(at) if self.child.is_none() && Instant::now() >= at => {}
            _ => return,
        }
        self.next_attempt = None;
        match self.server.launch(&self.rt, &self.shared, None) {
            Ok(child) => self.became_ready(child),
            Err(EmbeddedError::Stopped) => {}
            Err(e) => {
                warn!(error = %e, "restarting PostgreSQL failed; retrying in {:?}", self.backoff);
                self.schedule_attempt();
            }
        }
    }

    /// Records a postmaster that accepts connections.
    fn became_ready(&mut self, child: Child) {
        self.child = Some(child);
        self.started = Instant::now();
        self.shared.running.store(true, Ordering::SeqCst);
        if std::mem::take(&mut self.crashed) {
            let n = self.shared.restarts.fetch_add(1, Ordering::SeqCst) + 1;
            info!(
                restarts = n,
                "PostgreSQL is back after exiting unexpectedly"
            );
        }
    }

    /// A requested restart: fast shutdown, then a start with the start timeout.
    fn restart(&mut self) -> Result<(), EmbeddedError> {
        if let Some(mut child) = self.child.take() {
            info!(pid = child.id(), "restarting PostgreSQL on request");
            if let Err(e) = self.server.stop_child(&mut child, &self.shared) {
                self.schedule_attempt();
                return Err(e);
            }
        }
        // A requested restart brings it back, not the crash handling.
        self.crashed = false;
        self.next_attempt = None;
        let deadline = Instant::now() + self.server.start_timeout;
        match self.server.launch(&self.rt, &self.shared, Some(deadline)) {
            Ok(child) => {
                self.became_ready(child);
                Ok(())
            }
            Err(e) => {
                if !matches!(e, EmbeddedError::Stopped) {
                    self.schedule_attempt();
                }
                Err(e)
            }
        }
    }

    /// Stops the postmaster for good.
    fn stop(&mut self) -> Result<(), EmbeddedError> {
        self.next_attempt = None;
        self.shared.running.store(false, Ordering::SeqCst);
        match self.child.take() {
            Some(mut child) => {
                info!(pid = child.id(), dir = %self.server.dir.display(),
                    "stopping PostgreSQL (fast shutdown)");
                self.server.stop_child(&mut child, &self.shared)
            }
            None => self.server.kill_remaining(),
        }
    }
}

/// See [`EmbeddedPostgres::dsn`].
fn dsn_for(dir: &Path, port: u16, dbname: &str) -> String {
    format!(
        "host={} port={} user={} dbname={}",
        quote_conninfo(&dir.to_string_lossy()),
        port,
        SUPERUSER,
        quote_conninfo(dbname)
    )
}

/// Client configuration for the cluster at `dir`.
fn client_config(dir: &Path, port: u16, dbname: &str) -> tokio_postgres::Config {
    let mut config = tokio_postgres::Config::new();
    config
        .host_path(dir)
        .port(port)
        .user(SUPERUSER)
        .dbname(dbname)
        .connect_timeout(PROBE_TIMEOUT);
    config
}

/// One readiness probe: can we connect and log in? The error text on failure.
fn probe(rt: &Runtime, dir: &Path, port: u16) -> Result<(), String> {
    let config = client_config(dir, port, "postgres");
    rt.block_on(async {
        match tokio::time::timeout(PROBE_TIMEOUT, config.connect(NoTls)).await {
            Ok(Ok(_connected)) => Ok(()),
            Ok(Err(e)) => Err(describe_pg(&e)),
            Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
        }
    })
}

/// Creates database `name` unless it exists.
fn ensure_database(rt: &Runtime, dir: &Path, port: u16, name: &str) -> Result<(), EmbeddedError> {
    let config = client_config(dir, port, "postgres");
    let pg_err = |action: &str| {
        let action = action.to_string();
        move |source| EmbeddedError::Postgres { action, source }
    };
    rt.block_on(async {
        let (client, connection) = config
            .connect(NoTls)
            .await
            .map_err(pg_err("connect to the embedded PostgreSQL"))?;
        let driver = tokio::spawn(async move {
            let _ = connection.await;
        });
        let result = async {
            let rows = client
                .query("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
                .await
                .map_err(pg_err("look up databases"))?;
            if rows.is_empty() {
                info!(database = name, "creating database");
                let created = client
                    .batch_execute(&format!("CREATE DATABASE {}", quote_ident(name)))
                    .await;
                match created {
                    Err(e)
                        if e.code()
                            == Some(&tokio_postgres::error::SqlState::DUPLICATE_DATABASE) => {}
                    other => other.map_err(pg_err(&format!("create database {name:?}")))?,
                }
            }
            Ok(())
        }
        .await;
        drop(client);
        let _ = driver.await;
        result
    })
}

/// Finds `postgres` and `initdb`: the first absolute PATH directory holding both
/// (so their versions match), else the highest `/usr/lib/postgresql/<v>/bin`.
fn find_binaries() -> Result<Binaries, EmbeddedError> {
    find_binaries_in(std::env::var_os("PATH"), Path::new(DEBIAN_PG_LIB))
}

/// [`find_binaries`] over a given PATH value and Debian-style library directory.
fn find_binaries_in(
    path: Option<std::ffi::OsString>,
    lib: &Path,
) -> Result<Binaries, EmbeddedError> {
    let both = |dir: &Path| {
        let (postgres, initdb) = (dir.join("postgres"), dir.join("initdb"));
        (is_executable(&postgres) && is_executable(&initdb))
            .then_some(Binaries { postgres, initdb })
    };
    if let Some(path) = path {
        // Relative entries would resolve differently once we chdir to the data dir.
        if let Some(found) = std::env::split_paths(&path)
            .filter(|d| d.is_absolute())
            .find_map(|d| both(&d))
        {
            return Ok(found);
        }
    }
    let mut best: Option<(Vec<u32>, Binaries)> = None;
    if let Ok(entries) = fs::read_dir(lib) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name.to_str().and_then(|v| {
                v.split('.')
                    .map(|p| p.parse::<u32>().ok())
                    .collect::<Option<Vec<_>>>()
            }) else {
                continue;
            };
            if let Some(bins) = both(&entry.path().join("bin")) {
                let better = match &best {
                    Some((v, _)) => version > *v,
                    None => true,
                };
                if better {
                    best = Some((version, bins));
                }
            }
        }
    }
    best.map(|(_, bins)| bins)
        .ok_or(EmbeddedError::BinariesNotFound)
}

/// A regular file with an execute bit.
fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|md| md.is_file() && md.permissions().mode() & 0o111 != 0)
}

/// The OS user to run PostgreSQL as, when we are root.
fn resolve_owner(run_as: Option<&str>) -> Result<Owner, EmbeddedError> {
    let lookup = |name: &str| {
        User::from_name(name)
            .map_err(|e| io_err(format!("look up OS user {name:?}"))(io::Error::from(e)))
    };
    let (name, user) = match run_as {
        Some(name) => (name.to_string(), lookup(name)?),
        None => match lookup("postgres")? {
            Some(user) => ("postgres".to_string(), Some(user)),
            None => ("nobody".to_string(), lookup("nobody")?),
        },
    };
    let Some(user) = user else {
        return Err(EmbeddedError::InvalidRunAs {
            user: name,
            reason: "no such user".into(),
        });
    };
    if user.uid.is_root() {
        return Err(EmbeddedError::InvalidRunAs {
            user: name,
            reason: "PostgreSQL refuses to run with uid 0".into(),
        });
    }
    Ok(Owner {
        name,
        uid: user.uid,
        gid: user.gid,
    })
}

/// Checks that `owner` can search every directory above `dir` (top first, so
/// the message names the first one in the way). Does not consider ACLs.
fn check_traversable(dir: &Path, owner: &Owner) -> Result<(), EmbeddedError> {
    let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
    ancestors.reverse();
    for ancestor in ancestors {
        let md =
            fs::metadata(ancestor).map_err(io_err(format!("inspect {}", ancestor.display())))?;
        let mode = md.mode();
        let bits = if md.uid() == owner.uid.as_raw() {
            mode >> 6
        } else if md.gid() == owner.gid.as_raw() {
            mode >> 3
        } else {
            mode
        };
        if bits & 0o1 == 0 {
            return Err(EmbeddedError::NotTraversable {
                dir: ancestor.to_path_buf(),
                user: owner.name.clone(),
            });
        }
    }
    Ok(())
}

/// `chown -R owner dir`, touching only entries that differ and never following
/// symlinks.
fn chown_tree(dir: &Path, owner: &Owner) -> Result<(), EmbeddedError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let md =
            fs::symlink_metadata(&path).map_err(io_err(format!("inspect {}", path.display())))?;
        lchown_if_needed(&path, owner)?;
        if md.is_dir() {
            let entries =
                fs::read_dir(&path).map_err(io_err(format!("list {}", path.display())))?;
            for entry in entries {
                let entry = entry.map_err(io_err(format!("list {}", path.display())))?;
                stack.push(entry.path());
            }
        }
    }
    Ok(())
}

/// `lchown path owner` unless it already belongs to them.
fn lchown_if_needed(path: &Path, owner: &Owner) -> Result<(), EmbeddedError> {
    let md = fs::symlink_metadata(path).map_err(io_err(format!("inspect {}", path.display())))?;
    if md.uid() != owner.uid.as_raw() || md.gid() != owner.gid.as_raw() {
        std::os::unix::fs::lchown(path, Some(owner.uid.as_raw()), Some(owner.gid.as_raw()))
            .map_err(io_err(format!(
                "chown {} to {}",
                path.display(),
                owner.name
            )))?;
    }
    Ok(())
}

/// Rejects setting names that could not be a PostgreSQL parameter (and so could
/// smuggle another option in) and values the command line cannot carry.
fn validate_setting(name: &str, value: &str) -> Result<(), EmbeddedError> {
    let bad = |reason: &str| EmbeddedError::InvalidOption {
        name: format!("setting {name:?}"),
        reason: reason.into(),
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
    {
        return Err(bad("names are made of letters, digits, '_' and '.'"));
    }
    if value.contains('\0') {
        return Err(bad("the value contains a NUL byte"));
    }
    Ok(())
}

/// Rejects database names PostgreSQL would reject or silently truncate.
fn validate_database_name(name: &str) -> Result<(), EmbeddedError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name.contains('\0') {
        "it contains a NUL byte"
    } else if name.len() > MAX_IDENTIFIER {
        "it is longer than 63 bytes"
    } else {
        return Ok(());
    };
    Err(EmbeddedError::InvalidDatabaseName {
        name: name.to_string(),
        reason: reason.into(),
    })
}

/// An SQL identifier in double quotes.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A libpq connection-string value in single quotes, `'` and `\` escaped.
fn quote_conninfo(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

/// The last `max` bytes of a file, from a line start, trimmed; `None` if empty
/// or unreadable.
fn tail_of_file(path: &Path, max: u64) -> Option<String> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let start = len.saturating_sub(max);
    file.seek(SeekFrom::Start(start)).ok()?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf);
    let text = if start > 0 {
        text.split_once('\n').map_or(&*text, |(_, rest)| rest)
    } else {
        &text
    };
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

/// The last `n` lines of `text`.
fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tempfile::TempDir;
    use tokio_postgres::config::Host;

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
                fs::set_permissions(dir.join(bin), fs::Permissions::from_mode(0o755))
                    .expect("chmod");
            }
        };
        let lib = tmp.path().join("lib");
        let nothing = tmp.path().join("empty");
        fs::create_dir_all(&nothing).expect("mkdir");
        assert!(matches!(
            find_binaries_in(Some(nothing.clone().into()), &lib),
            Err(EmbeddedError::BinariesNotFound)
        ));
        fake(&lib.join("13/bin"));
        fake(&lib.join("15/bin"));
        fs::create_dir_all(lib.join("16/bin")).expect("mkdir"); // no binaries: skipped
        let found = find_binaries_in(Some(nothing.into()), &lib).expect("found");
        assert_eq!(found.postgres, lib.join("15/bin/postgres"));
        let on_path = tmp.path().join("path");
        fake(&on_path);
        let found = find_binaries_in(Some(on_path.clone().into()), &lib).expect("found");
        assert_eq!(found.initdb, on_path.join("initdb"));
    }

    #[test]
    fn missing_binaries_error_names_the_package() {
        let text = EmbeddedError::BinariesNotFound.to_string();
        assert!(text.contains("apt-get install postgresql"), "{text}");
        find_binaries().expect("this machine has PostgreSQL server binaries");
    }

    #[test]
    fn rejects_unusable_arguments() {
        let tmp = temp_root();
        let long = tmp.path().join("d".repeat(110));
        let err =
            EmbeddedPostgres::start(&long, EmbeddedOptions::default()).expect_err("must fail");
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
        let err =
            EmbeddedPostgres::start(&full, EmbeddedOptions::default()).expect_err("must fail");
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
        let bins = find_binaries().expect("binaries");
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
}
