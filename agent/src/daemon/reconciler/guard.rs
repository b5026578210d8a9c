//! The reload boundary's panic guard: a panic while loading or compiling a policy is a bug,
//! but the daemon must outlive it with its last good policy. The panic is caught, turned
//! into an error that is reported like an invalid file, and logged once (by the caller,
//! with the panic's message and location) instead of also by the default hook.

use std::cell::{Cell, RefCell};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    /// Inside [`catch`] on this thread: the hook keeps the panic's text instead of printing.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static CAUGHT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Install (once) a panic hook that records panics inside [`catch`] and leaves every other
/// panic to the hook that was there before.
fn install_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                // "panicked at FILE:LINE:COL:\nMESSAGE" on one line.
                let text = info.to_string().replace('\n', " ");
                CAUGHT.with(|c| *c.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

/// Run `f`; a panic in it comes back as `Err` with its message and location.
///
/// `AssertUnwindSafe`: whatever `f` mutates may be half-changed after a panic; callers
/// throw such state away (a fresh `Reloader`, a fresh `Compiler`) and keep the last good
/// policy, which `f` only reads.
pub fn catch<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    let was = GUARDED.with(|g| g.replace(true));
    let r = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was));
    r.map_err(|payload| {
        CAUGHT.with(|c| c.borrow_mut().take()).unwrap_or_else(|| {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned());
            format!("panicked: {}", msg.unwrap_or_else(|| "(no message)".into()))
        })
    })
}

/// The error a caught panic while `what` (loading, compiling) `file` is reported as
/// (status, log, the failed-reload count).
pub fn panic_error(file: &std::path::Path, what: &str, panic: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "{}: internal error while {what} the policy (a bug in xfrm-agent; please report it \
         with the file): {panic}",
        file.display()
    )
}

/// Test hook, compiled into debug builds only: with `XFRM_AGENT_INJECT_PANIC=STAGE:MARKER`
/// (comma-separated, several) in the environment (STAGE `load` or `compile`), loading or
/// compiling a policy file whose text contains MARKER panics. An environment variable rather than `cfg(test)` or a cargo
/// feature: the namespace tests run the real binary, which `cfg(test)` does not reach and
/// which `cargo test` builds without extra features; release builds carry none of it.
pub fn injected(stage: &str, text: &str) -> bool {
    if !cfg!(debug_assertions) {
        return false;
    }
    std::env::var("XFRM_AGENT_INJECT_PANIC").is_ok_and(|v| {
        v.split(',')
            .filter_map(|e| e.split_once(':'))
            .any(|(s, marker)| s == stage && !marker.is_empty() && text.contains(marker))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_comes_back_as_its_message_and_location() {
        let e = catch(|| -> u32 { panic!("overflow in {}", "epoch") }).unwrap_err();
        assert!(e.starts_with("panicked at "), "{e}");
        assert!(
            e.contains("guard.rs") && e.ends_with("overflow in epoch"),
            "{e}"
        );
        assert!(!e.contains('\n'));
        assert_eq!(catch(|| 7), Ok(7));
        // Arithmetic overflow (a debug build's check) is caught the same way.
        if cfg!(debug_assertions) {
            let big = std::hint::black_box(u64::MAX);
            let e = catch(|| big * 2).unwrap_err();
            assert!(e.contains("overflow"), "{e}");
        }
        // Outside the guard the previous hook is back (nothing recorded).
        assert!(CAUGHT.with(|c| c.borrow().is_none()));
        assert!(!GUARDED.with(Cell::get));
    }
}
