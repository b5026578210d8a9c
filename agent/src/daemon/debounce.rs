//! When a change to the policy or key files is read: kinds of file event and the debounce
//! that turns a burst of them into one reload. Time comes in as an argument.

use std::time::Duration;

/// Kinds of file event, as far as reloading cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileEvent {
    /// The file is complete now: a rename into place, a symlink swap, a writer closing it.
    Complete,
    /// The file's content changed under an open writer (truncate, write): its close will
    /// say when it is complete. Waits for that, up to the debounce's maximum wait — a
    /// writer descheduled between truncating and writing must not get its empty file
    /// rejected (a loaded machine does that for longer than any quiet period).
    Writing,
    /// Something changed that no close will follow (a removal, new attributes): reload
    /// once it has been quiet for a while.
    Changed,
}

/// Debounce for file events. A complete file reloads at once; a file being written waits
/// for its writer to close it; any other change reloads after `quiet` without further
/// events. Never later than `max_wait` after the first event (a writer that keeps the file
/// open must not starve reloads).
#[derive(Debug, Clone)]
pub struct Debounce {
    quiet: Duration,
    max_wait: Duration,
    first: Option<Duration>,
    due: Option<Duration>,
}

impl Debounce {
    pub fn new(quiet: Duration) -> Debounce {
        Debounce {
            quiet,
            max_wait: quiet * 10,
            first: None,
            due: None,
        }
    }

    /// Note an event at `now`.
    pub fn event(&mut self, kind: FileEvent, now: Duration) {
        let first = *self.first.get_or_insert(now);
        let due = match kind {
            FileEvent::Complete => now,
            FileEvent::Writing => first + self.max_wait,
            FileEvent::Changed => (now + self.quiet).min(first + self.max_wait),
        };
        // A complete event wins over a pending wait; a later change extends it.
        self.due = Some(match (self.due, kind) {
            (Some(d), FileEvent::Writing | FileEvent::Changed) if d <= now => d,
            _ => due,
        });
    }

    /// Reload at `at` at the latest (a file caught mid-write, read again); noted `now`.
    pub fn again(&mut self, at: Duration, now: Duration) {
        self.first.get_or_insert(now);
        self.due = Some(self.due.map_or(at, |d| d.min(at)));
    }

    /// When the reload is due (None: nothing pending).
    pub fn due(&self) -> Option<Duration> {
        self.due
    }

    /// True (and reset) when a reload is due at `now`.
    pub fn fire(&mut self, now: Duration) -> bool {
        match self.due {
            Some(d) if d <= now => {
                self.due = None;
                self.first = None;
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn complete_file_reloads_at_once_changes_wait_for_quiet() {
        let mut d = Debounce::new(ms(100));
        d.event(FileEvent::Changed, ms(0));
        assert!(!d.fire(ms(50)));
        d.event(FileEvent::Changed, ms(60));
        assert_eq!(d.due(), Some(ms(160)));
        d.event(FileEvent::Complete, ms(70));
        assert!(d.fire(ms(70)));
        assert_eq!(d.due(), None);
    }

    #[test]
    fn a_stalled_writer_is_waited_for_until_it_closes() {
        let mut d = Debounce::new(ms(100));
        // Truncated, then nothing for far longer than the quiet period.
        d.event(FileEvent::Writing, ms(0));
        assert!(!d.fire(ms(500)));
        d.event(FileEvent::Writing, ms(600));
        assert!(!d.fire(ms(700)));
        d.event(FileEvent::Complete, ms(700));
        assert!(d.fire(ms(700)));
        // A writer that never closes is read at the maximum wait.
        d.event(FileEvent::Writing, ms(2000));
        assert!(!d.fire(ms(2999)));
        assert!(d.fire(ms(3000)));
    }

    #[test]
    fn endless_writer_does_not_starve_reload() {
        let mut d = Debounce::new(ms(100));
        let mut fired = None;
        for t in (0..3000).step_by(50) {
            d.event(FileEvent::Changed, ms(t));
            if d.fire(ms(t)) {
                fired = Some(t);
                break;
            }
        }
        assert_eq!(fired, Some(1000), "max wait is 10 × quiet");
    }

    #[test]
    fn write_after_due_does_not_postpone() {
        let mut d = Debounce::new(ms(100));
        d.event(FileEvent::Complete, ms(10));
        d.event(FileEvent::Writing, ms(20));
        d.event(FileEvent::Changed, ms(20));
        assert!(d.fire(ms(20)));
    }

    #[test]
    fn a_file_caught_mid_write_is_read_again_no_later_than_asked() {
        let mut d = Debounce::new(ms(100));
        d.again(ms(900), ms(0));
        assert!(!d.fire(ms(899)));
        assert!(d.fire(ms(900)));
        // A sooner reload already due stays; an earlier re-read wins over a later one.
        d.event(FileEvent::Complete, ms(1000));
        d.again(ms(1500), ms(1000));
        assert!(d.fire(ms(1000)));
        d.again(ms(2500), ms(2000));
        d.again(ms(2100), ms(2000));
        assert_eq!(d.due(), Some(ms(2100)));
    }
}
