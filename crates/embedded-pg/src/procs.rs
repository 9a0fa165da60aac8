//! Processes, read from `/proc` and signalled: which postgres processes serve a data
//! directory, whether the chute that started them is still alive, and waiting for a
//! child with a deadline.

use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::fs;
use std::io;
use std::path::Path;
use std::process::Child;
use std::thread;
use std::time::{Duration, Instant};

/// A server process found in /proc.
#[derive(Debug, Clone)]
pub(crate) struct ProcInfo {
    /// Its pid.
    pub(crate) pid: i32,
    /// Its parent's pid.
    pub(crate) ppid: i32,
    /// A postmaster child (its title starts with `postgres: `), not a postmaster.
    pub(crate) is_child: bool,
}

/// See [`Server::server_processes`].
pub(crate) fn server_processes(canonical_dir: &Path) -> Vec<ProcInfo> {
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
pub(crate) fn read_lock_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    text.lines().next()?.trim().parse().ok()
}

/// Whether `ppid` looks like a live supervisor of a postmaster: this very
/// process, or a process with our executable name (another chute). Orphans are
/// adopted by init or a subreaper, which have other names.
pub(crate) fn has_live_supervisor(ppid: i32) -> bool {
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
pub(crate) fn proc_comm(pid: i32) -> Option<String> {
    fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim_end_matches('\n').to_string())
}

/// The parent pid from `/proc/<pid>/stat` (the field after the state, after
/// the parenthesised command name, which may itself contain spaces or parens).
pub(crate) fn proc_ppid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a process name is a PostgreSQL server's.
pub(crate) fn is_postgres_comm(comm: &str) -> bool {
    comm == "postgres" || comm == "postmaster"
}

/// Sends `sig`; a process that is already gone is not an error.
pub(crate) fn signal(pid: Pid, sig: Signal) -> io::Result<()> {
    match kill(pid, sig) {
        Ok(()) | Err(Errno::ESRCH) => Ok(()),
        Err(e) => Err(io::Error::from(e)),
    }
}

/// A child's pid as nix wants it. Pids fit in i32 (the kernel's pid_t).
pub(crate) fn pid_of(pid: u32) -> Pid {
    Pid::from_raw(pid as i32)
}

/// Waits up to `timeout` for `child` to exit; true if it did (and is reaped).
pub(crate) fn wait_child(child: &mut Child, timeout: Duration) -> io::Result<bool> {
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
