//! systemd integration (`Type=notify`): READY=1 once the listeners are bound and the
//! queues are open, WATCHDOG=1 from a heartbeat that has to pass through the actors,
//! STOPPING=1 when shutdown begins. Without `NOTIFY_SOCKET` all of it is a no-op.
//!
//! READY does not wait for PostgreSQL: with the queues open chute accepts records
//! durably while a shard is down, and a start that waited would let systemd kill a
//! daemon that is doing its job. `/readyz` tells whether the shards answer.

use std::time::Duration;

use actix::prelude::*;
use futures_util::future::join_all;
use sd_notify::NotifyState;

use crate::actors::Ping;

/// Tells systemd the daemon is ready.
pub fn ready() {
    notify(NotifyState::Ready);
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    notify(NotifyState::Stopping);
}

fn notify(state: NotifyState) {
    if let Err(e) = sd_notify::notify(false, &[state]) {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}

/// When systemd asks for a watchdog (`WatchdogSec=`), pings every actor in `actors`
/// at half the interval and sends WATCHDOG=1 only when all of them answered in
/// time: a stalled arbiter stops the heartbeat, and systemd restarts chute.
pub fn start_watchdog(actors: Vec<Recipient<Ping>>) {
    let mut usec = 0;
    if !sd_notify::watchdog_enabled(false, &mut usec) || usec == 0 {
        return;
    }
    let every = Duration::from_micros(usec / 2);
    tracing::info!(
        interval_ms = every.as_millis() as u64,
        "systemd watchdog on"
    );
    actix_web::rt::spawn(async move {
        loop {
            tokio::time::sleep(every).await;
            let pings = join_all(actors.iter().map(|a| a.send(Ping)));
            match tokio::time::timeout(every, pings).await {
                Ok(answers) if answers.iter().all(Result::is_ok) => notify(NotifyState::Watchdog),
                _ => tracing::error!(
                    "an actor did not answer the watchdog ping; withholding WATCHDOG=1"
                ),
            }
        }
    });
}
