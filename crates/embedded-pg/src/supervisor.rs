//! The supervisor thread: starts the server, restarts it with backoff when it dies,
//! and stops it (fast, then immediate, then SIGKILL) when asked.

use std::process::Child;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;
use tracing::{info, warn};

use crate::client::ensure_database;
use crate::server::Server;
use crate::{
    io_err, EmbeddedError, Request, Shared, BACKOFF_MAX, BACKOFF_START, CHUTE_DATABASE,
    FAST_SHUTDOWN_GRACE, FIRST_START_ATTEMPTS, POLL, STABLE_UPTIME,
};

/// The supervisor thread: first start, then the watch loop. The postmaster is
/// this thread's child, so this thread must not end while it runs (PDEATHSIG).
pub(crate) fn supervise(
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
        let _ = supervisor.stop(FAST_SHUTDOWN_GRACE);
        return;
    }
    supervisor.run(&requests);
}

/// The first start: a few attempts (a leftover from a killed predecessor may
/// briefly hold shared memory), then database `chute`.
pub(crate) fn first_start(
    server: &Server,
    rt: &Runtime,
    shared: &Shared,
) -> Result<Child, EmbeddedError> {
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
pub(crate) struct Supervisor {
    /// The cluster.
    pub(crate) server: Server,
    /// What the handle reads.
    pub(crate) shared: Arc<Shared>,
    /// For readiness probes.
    pub(crate) rt: Runtime,
    /// The postmaster, if one runs.
    pub(crate) child: Option<Child>,
    /// When the current postmaster became ready.
    pub(crate) started: Instant,
    /// Delay before the next restart attempt.
    pub(crate) backoff: Duration,
    /// When to try starting again, while down.
    pub(crate) next_attempt: Option<Instant>,
    /// The postmaster died on its own and has not been brought back yet.
    pub(crate) crashed: bool,
}

impl Supervisor {
    /// Serves requests and restarts a postmaster that died, until shutdown.
    pub(crate) fn run(&mut self, requests: &mpsc::Receiver<Request>) {
        loop {
            match requests.recv_timeout(POLL) {
                Ok(Request::Shutdown(reply, fast)) => {
                    let _ = reply.send(self.stop(fast));
                    return;
                }
                Ok(Request::Restart(reply)) => {
                    let _ = reply.send(self.restart());
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.stop(FAST_SHUTDOWN_GRACE);
                    return;
                }
            }
            self.watch();
            self.relaunch_if_due();
        }
    }

    /// Notices a postmaster that exited on its own.
    pub(crate) fn watch(&mut self) {
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
    pub(crate) fn schedule_attempt(&mut self) {
        self.next_attempt = Some(Instant::now() + self.backoff);
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
    }

    /// Starts the postmaster again when it is down and the backoff has passed.
    pub(crate) fn relaunch_if_due(&mut self) {
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
    pub(crate) fn became_ready(&mut self, child: Child) {
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
    pub(crate) fn restart(&mut self) -> Result<(), EmbeddedError> {
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

    /// Stops the postmaster for good, giving fast shutdown at most `fast`.
    pub(crate) fn stop(&mut self, fast: Duration) -> Result<(), EmbeddedError> {
        self.next_attempt = None;
        self.shared.running.store(false, Ordering::SeqCst);
        match self.child.take() {
            Some(mut child) => {
                info!(pid = child.id(), dir = %self.server.dir.display(),
                    "stopping PostgreSQL (fast shutdown)");
                self.server
                    .stop_child_within(&mut child, &self.shared, fast)
            }
            None => self.server.kill_remaining(),
        }
    }
}
