//! One PostgreSQL server in a data directory: initdb on first use, its settings,
//! start, readiness, stop, and a server left running by an earlier chute.

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::unistd::Pid;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime};
use tokio::runtime::Runtime;
use tracing::{debug, info, warn};

use crate::client::probe;
use crate::host::{
    check_traversable, chown_tree, find_binaries, last_lines, lchown_if_needed, resolve_owner,
    tail_of_file, validate_setting, Binaries, Owner,
};
use crate::procs::{
    has_live_supervisor, is_postgres_comm, pid_of, proc_comm, read_lock_pid, server_processes,
    signal, wait_child, ProcInfo,
};
use crate::{
    io_err, EmbeddedError, EmbeddedOptions, Shared, BASE_SETTINGS, FAST_SHUTDOWN_GRACE, KILL_GRACE,
    LOG_TAIL_BYTES, MAX_SOCKET_PATH, POLL, QUIT_GRACE, SCRUBBED_ENV, SUPERUSER,
};

/// Everything needed to run one cluster; owned by the supervisor thread.
pub(crate) struct Server {
    /// Absolute data/socket directory.
    pub(crate) dir: PathBuf,
    /// `dir` with symlinks resolved, as `/proc/<pid>/cwd` shows it.
    pub(crate) canonical_dir: PathBuf,
    /// `<dir>/log`.
    pub(crate) log_dir: PathBuf,
    /// Server binaries.
    pub(crate) bins: Binaries,
    /// Socket port.
    pub(crate) port: u16,
    /// Who runs the server when we are root.
    pub(crate) owner: Option<Owner>,
    /// Caller's extra settings.
    pub(crate) settings: Vec<(String, String)>,
    /// Time allowed for a requested start.
    pub(crate) start_timeout: Duration,
}

impl Server {
    /// Validates the arguments, finds the binaries, creates and initialises the
    /// cluster if needed and fixes ownership: everything up to starting it.
    pub(crate) fn prepare(dir: &Path, opts: EmbeddedOptions) -> Result<Self, EmbeddedError> {
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
        let bins = find_binaries(&dir)?;
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
    pub(crate) fn initdb(&self) -> Result<(), EmbeddedError> {
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
    pub(crate) fn ensure_log_dir(&self) -> Result<(), EmbeddedError> {
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
    pub(crate) fn configure(&self, cmd: &mut Command) {
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
    pub(crate) fn postmaster_command(&self, log: &File) -> Result<Command, EmbeddedError> {
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
    pub(crate) fn launch(
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
    pub(crate) fn stop_child(
        &self,
        child: &mut Child,
        shared: &Shared,
    ) -> Result<(), EmbeddedError> {
        self.stop_child_within(child, shared, FAST_SHUTDOWN_GRACE)
    }

    /// [`Self::stop_child`], giving fast shutdown at most `fast` before SIGQUIT.
    pub(crate) fn stop_child_within(
        &self,
        child: &mut Child,
        shared: &Shared,
        fast: Duration,
    ) -> Result<(), EmbeddedError> {
        shared.running.store(false, Ordering::SeqCst);
        let pid = child.id();
        let result = (|| -> io::Result<()> {
            // The child is not reaped until try_wait/wait says so, so its pid
            // cannot have been reused: signalling it is safe.
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            signal(pid_of(pid), Signal::SIGINT)?;
            if wait_child(child, fast)? {
                return Ok(());
            }
            warn!(
                pid,
                "PostgreSQL fast shutdown took over {fast:?}; sending SIGQUIT"
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
    pub(crate) fn clear_leftovers(&self) -> Result<(), EmbeddedError> {
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
    pub(crate) fn kill_remaining(&self) -> Result<(), EmbeddedError> {
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
    pub(crate) fn wait_no_processes(&self, timeout: Duration) -> bool {
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
    pub(crate) fn server_processes(&self) -> Vec<ProcInfo> {
        server_processes(&self.canonical_dir)
    }

    /// Removes `postmaster.pid` and the socket lock file when no server process
    /// runs on the directory. PostgreSQL ignores a lock file whose pid is dead,
    /// but after a reboot or in a container the pid is often reused by an
    /// unrelated live process, and then it refuses to start.
    pub(crate) fn remove_stale_lock_files(&self) {
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
    pub(crate) fn log_tail(&self, since: SystemTime) -> String {
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
