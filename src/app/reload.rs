//! SIGHUP: re-reading the configuration file and applying what can change live.

use std::path::Path;
use std::sync::Arc;

use actix::prelude::*;

use crate::actors::writer::{Reconfigure, Writer};
use crate::config::Config;

/// The parts of a running chute whose settings SIGHUP can change.
pub(super) struct Live {
    pub(super) http: Arc<std::sync::RwLock<crate::config::HttpConfig>>,
    pub(super) listeners: Vec<crate::sources::syslog::listener::Live>,
    pub(super) auth: Arc<crate::http::auth::Auth>,
    pub(super) limits: Arc<crate::limits::Limits>,
}

/// SIGHUP: reads and validates the configuration file again. An invalid file leaves
/// everything as it is. Of a valid one, the settings that can change live are
/// applied (log level, HTTP body limit and ack timeout, writer batching and
/// retries, syslog listeners' message size and idle timeout, tokens, rate
/// limits); the sections whose
/// other settings changed are reported as needing a restart. Returns the metric
/// result.
pub(super) fn reload(
    path: Option<&Path>,
    running: &mut Config,
    live: &Live,
    writers: &[Addr<Writer>],
) -> &'static str {
    let Some(path) = path else {
        tracing::warn!("SIGHUP: chute runs without a configuration file; nothing to reload");
        return "no_file";
    };
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "SIGHUP: the new configuration is invalid; keeping the running one");
            return "invalid";
        }
    };
    if &new == running {
        tracing::info!(file = %path.display(), "SIGHUP: configuration unchanged");
        return "unchanged";
    }
    // Take over what can change live; what still differs needs a restart.
    let mut applied = running.clone();
    if new.log.level != running.log.level {
        match crate::telemetry::set_level(&new.log.level) {
            Ok(()) => applied.log.level = new.log.level.clone(),
            Err(e) => tracing::warn!(error = %e, "SIGHUP: cannot change the log level"),
        }
    }
    applied.http.max_body_bytes = new.http.max_body_bytes;
    applied.http.ack_timeout_ms = new.http.ack_timeout_ms;
    applied.http.max_inflight_bytes = new.http.max_inflight_bytes;
    applied.http.body_timeout_ms = new.http.body_timeout_ms;
    *live.http.write().unwrap_or_else(|p| p.into_inner()) = applied.http.clone();
    if new.writer != running.writer {
        applied.writer = new.writer.clone();
        for w in writers {
            w.do_send(Reconfigure(new.writer.clone()));
        }
    }
    if let (Some(old), Some(fresh)) = (
        applied.syslog.listeners.as_mut(),
        new.syslog.listeners.as_ref(),
    ) {
        for (o, f) in old.iter_mut().zip(fresh) {
            if o.label() == f.label() {
                o.max_message_bytes = f.max_message_bytes;
                o.idle_timeout_ms = f.idle_timeout_ms;
                if let Some(l) = live.listeners.iter().find(|l| l.label() == f.label()) {
                    l.update(f);
                }
            }
        }
    }
    if new.tokens != running.tokens {
        applied.tokens = new.tokens.clone();
        live.auth.set_tokens(&new.tokens);
    }
    if new.limits != running.limits {
        applied.limits = new.limits.clone();
        live.limits.set(new.limits.clone());
    }
    let restart = changed_sections(&applied, &new);
    *running = applied;
    if restart.is_empty() {
        tracing::info!(file = %path.display(), "SIGHUP: configuration applied");
        "applied"
    } else {
        tracing::warn!(file = %path.display(), sections = ?restart, "SIGHUP: live settings applied; these sections changed in ways that need a restart: restart chute to apply it");
        "restart_needed"
    }
}

/// The top-level sections that differ between two configurations.
pub(super) fn changed_sections(a: &Config, b: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    let mut check = |name, differs: bool| {
        if differs {
            out.push(name);
        }
    };
    check("node", a.node != b.node);
    check("http", a.http != b.http);
    check("writer", a.writer != b.writer);
    check("storage", a.storage != b.storage);
    check("shards", a.shards != b.shards);
    check("nodes", a.nodes != b.nodes);
    check("cluster", a.cluster != b.cluster);
    check("embedded", a.embedded != b.embedded);
    check("queue", a.queue != b.queue);
    check("syslog", a.syslog != b.syslog);
    check("log", a.log != b.log);
    check("query", a.query != b.query);
    check("tokens", a.tokens != b.tokens);
    check("limits", a.limits != b.limits);
    out
}
