//! A test hook for dying between two writes. With `STANDBY_CRASH_AFTER=<point>` in its
//! environment, the process kills itself with SIGKILL when it reaches that point, so a
//! black-box test can prove what a retry sees after a crash at exactly that moment (the
//! idempotency tests in `tests/hardening.rs`). Unset, it costs one read of a cached value.
//!
//! Points: `plan.start` (a start or undo is committed, its answer not yet sent) and
//! `plan.patch` (a PATCH is committed, its answer not yet sent).

use std::sync::OnceLock;

static CRASH_AFTER: OnceLock<Option<String>> = OnceLock::new();

pub(crate) fn reached(point: &str) {
    let armed = CRASH_AFTER.get_or_init(|| std::env::var("STANDBY_CRASH_AFTER").ok());
    if armed.as_deref() != Some(point) {
        return;
    }
    tracing::warn!(point, "STANDBY_CRASH_AFTER: killing this process");
    // SIGKILL, as a power cut or the OOM killer would: no destructor, no flush, no answer.
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &std::process::id().to_string()])
        .status();
    // The signal is on its way; nothing after this point may run.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}
