//! What the host provides: the server binaries, the user the server runs as, file
//! ownership and permissions, settings that are safe to pass, and log tails.

use nix::unistd::{Gid, Uid, User};
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::{io_err, EmbeddedError, DEBIAN_PG_LIB};

/// The server binaries to use.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    /// `postgres`.
    pub(crate) postgres: PathBuf,
    /// `initdb`, from the same directory so versions match.
    pub(crate) initdb: PathBuf,
}

/// The OS user PostgreSQL runs as when chute is root.
#[derive(Debug, Clone)]
pub(crate) struct Owner {
    /// User name, for messages.
    pub(crate) name: String,
    /// Its uid.
    pub(crate) uid: Uid,
    /// Its primary gid (std drops supplementary groups when it sets the uid).
    pub(crate) gid: Gid,
}

/// Finds `postgres` and `initdb`: the first absolute PATH directory holding both
/// (so their versions match), else the highest `/usr/lib/postgresql/<v>/bin`.
pub(crate) fn find_binaries(data_dir: &Path) -> Result<Binaries, EmbeddedError> {
    let want = data_version(data_dir);
    find_binaries_in(
        std::env::var_os("PATH"),
        Path::new(DEBIAN_PG_LIB),
        want.as_deref(),
    )
}

/// The major version the data directory was made by (its `PG_VERSION`), if any.
pub(crate) fn data_version(data_dir: &Path) -> Option<String> {
    let text = fs::read_to_string(data_dir.join("PG_VERSION")).ok()?;
    let v = text.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

/// The major version of a `postgres` binary, from `postgres -V`
/// (`postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → `15`).
fn binary_major(postgres: &Path) -> Option<String> {
    let out = std::process::Command::new(postgres)
        .arg("-V")
        .env_clear()
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let version = text.split_whitespace().nth(2)?;
    Some(major_of(version))
}

/// `15.18` → `15`; before PostgreSQL 10 the major had two parts (`9.6.24` → `9.6`).
fn major_of(version: &str) -> String {
    let parts: Vec<&str> = version.split('.').collect();
    match parts.first().and_then(|p| p.parse::<u32>().ok()) {
        Some(n) if n < 10 && parts.len() > 1 => format!("{}.{}", parts[0], parts[1]),
        _ => parts.first().copied().unwrap_or(version).to_owned(),
    }
}

/// [`find_binaries`] over a given PATH value and Debian-style library directory.
/// With `want` (the data directory's major version), only binaries of that major
/// will do: PostgreSQL cannot open another major's data, and must never be tried.
pub(crate) fn find_binaries_in(
    path: Option<std::ffi::OsString>,
    lib: &Path,
    want: Option<&str>,
) -> Result<Binaries, EmbeddedError> {
    let both = |dir: &Path| {
        let (postgres, initdb) = (dir.join("postgres"), dir.join("initdb"));
        (is_executable(&postgres) && is_executable(&initdb))
            .then_some(Binaries { postgres, initdb })
    };
    if let Some(major) = want {
        return both(&lib.join(major).join("bin"))
            .or_else(|| {
                let path = path?;
                std::env::split_paths(&path)
                    .filter(|d| d.is_absolute())
                    .filter_map(|d| both(&d))
                    .find(|b| binary_major(&b.postgres).as_deref() == Some(major))
            })
            .ok_or_else(|| EmbeddedError::BinariesForDataNotFound {
                major: major.to_owned(),
            });
    }
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
pub(crate) fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|md| md.is_file() && md.permissions().mode() & 0o111 != 0)
}

/// The OS user to run PostgreSQL as, when we are root.
pub(crate) fn resolve_owner(run_as: Option<&str>) -> Result<Owner, EmbeddedError> {
    resolve_owner_with(run_as, |name| {
        User::from_name(name)
            .map_err(|e| io_err(format!("look up OS user {name:?}"))(io::Error::from(e)))
    })
}

/// [`resolve_owner`] with the user database given by `lookup`.
pub(crate) fn resolve_owner_with(
    run_as: Option<&str>,
    lookup: impl Fn(&str) -> Result<Option<User>, EmbeddedError>,
) -> Result<Owner, EmbeddedError> {
    let name = run_as.unwrap_or("postgres").to_owned();
    let Some(user) = lookup(&name)? else {
        // Never a shared account such as `nobody`: the server's files would belong
        // to every other program running as it.
        return Err(EmbeddedError::InvalidRunAs {
            reason: if run_as.is_some() {
                "no such user".into()
            } else {
                "no such user; create a system user for the server (Debian's postgresql \
                 package makes `postgres`; or `useradd --system --home-dir /nonexistent \
                 postgres`) or set [embedded] run_as"
                    .into()
            },
            user: name,
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
pub(crate) fn check_traversable(dir: &Path, owner: &Owner) -> Result<(), EmbeddedError> {
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
pub(crate) fn chown_tree(dir: &Path, owner: &Owner) -> Result<(), EmbeddedError> {
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
pub(crate) fn lchown_if_needed(path: &Path, owner: &Owner) -> Result<(), EmbeddedError> {
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
pub(crate) fn validate_setting(name: &str, value: &str) -> Result<(), EmbeddedError> {
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

/// The last `max` bytes of a file, from a line start, trimmed; `None` if empty
/// or unreadable.
pub(crate) fn tail_of_file(path: &Path, max: u64) -> Option<String> {
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
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
