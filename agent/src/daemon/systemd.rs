//! systemd notifications (READY, RELOADING, WATCHDOG, STOPPING). Not under systemd (no
//! NOTIFY_SOCKET) each is a no-op.

pub(super) fn notify(states: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(states);
}

/// RELOADING with the monotonic timestamp systemd asks to come with it.
pub(super) fn reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(m) => notify(&[sd_notify::NotifyState::Reloading, m]),
        Err(_) => notify(&[sd_notify::NotifyState::Reloading]),
    }
}
