//! chute's own logs: tracing, as text or JSON, to stderr (journald picks it up).

use std::io::IsTerminal;
use std::sync::OnceLock;

use tracing_subscriber::EnvFilter;

type Reload = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

/// Changes the level filter of the installed subscriber (SIGHUP).
static RELOAD: OnceLock<Reload> = OnceLock::new();

use crate::config::LogFormat;

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `level`.
/// Calling it twice is harmless (the second call changes nothing).
pub fn init(level: &str, format: LogFormat) {
    let filter = || {
        EnvFilter::try_from_default_env()
            .or_else(|_| EnvFilter::try_new(level))
            .unwrap_or_else(|_| EnvFilter::new("info"))
    };
    // Colour only for a person at a terminal, never into journald or a file.
    let ansi = std::io::stderr().is_terminal();
    let env_wins = std::env::var_os("RUST_LOG").is_some();
    macro_rules! install {
        ($b:expr) => {{
            let b = $b
                .with_env_filter(filter())
                .with_writer(std::io::stderr)
                .with_filter_reloading();
            let handle = b.reload_handle();
            if b.try_init().is_ok() {
                let _ = RELOAD.set(Box::new(move |level: &str| {
                    if env_wins {
                        return Ok(()); // RUST_LOG wins, at start and on reload
                    }
                    let filter = EnvFilter::try_new(level).map_err(|e| e.to_string())?;
                    handle.reload(filter).map_err(|e| e.to_string())
                }));
            }
        }};
    }
    match format {
        LogFormat::Text => install!(tracing_subscriber::fmt().with_ansi(ansi)),
        LogFormat::Json => install!(tracing_subscriber::fmt().json().flatten_event(true)),
    }
}

/// Applies a new level filter (`[log] level`) without a restart.
///
/// # Errors
/// An invalid filter, or no subscriber installed by [`init`].
pub fn set_level(level: &str) -> Result<(), String> {
    match RELOAD.get() {
        Some(reload) => reload(level),
        None => Err("no reloadable subscriber".to_owned()),
    }
}
