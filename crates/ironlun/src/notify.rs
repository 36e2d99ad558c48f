//! The systemd side of `Type=notify` (sd_notify(3)): READY=1 once the daemon serves, STOPPING=1
//! when it starts draining, WATCHDOG=1 at half the interval systemd asks for, and a one-line
//! STATUS= with what is served. Without `NOTIFY_SOCKET` (not started by systemd) each of these
//! does nothing. A message that cannot be sent is logged once and never stops the daemon.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

/// Set after the first failed send, so a broken socket is reported once, not at every ping.
static WARNED: AtomicBool = AtomicBool::new(false);

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!("cannot notify the service manager (NOTIFY_SOCKET): {e}");
        }
    }
}

/// Everything is up: config.json, APTPL and ALUA state restored, every portal and the control
/// socket bound. `status` is a short human line for `systemctl status`.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// Shutdown begins: sessions are drained and devices flushed next.
pub fn stopping() {
    send(&[
        NotifyState::Stopping,
        NotifyState::Status("draining sessions and flushing devices"),
    ]);
}

/// When systemd's watchdog is on for this process (`WATCHDOG_USEC`, and `WATCHDOG_PID` unset or
/// ours), ping it at half the interval from a task on the daemon's runtime, each ping after a
/// round trip through the blocking pool that runs every SCSI command: a runtime that stops
/// making progress, or a pool with no thread left to take work, stops the pings and systemd
/// restarts the service. (Long control work, such as preallocating a file, is not a hang and
/// does not stop them.)
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    let period = (interval / 2).max(Duration::from_millis(10));
    tracing::info!("systemd watchdog: {interval:?}, pinging every {period:?}");
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let pool = tokio::task::spawn_blocking(|| ());
            match tokio::time::timeout(period, pool).await {
                Ok(Ok(())) => send(&[NotifyState::Watchdog]),
                _ => tracing::error!(
                    "the blocking pool did not run a no-op within {period:?}: no watchdog ping"
                ),
            }
        }
    });
}
