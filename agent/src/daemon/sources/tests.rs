//! The loop's source timers on tokio's paused clock: the loop sleeps until the earliest
//! source deadline, and fires exactly the sources that are due.

use std::ops::ControlFlow;
use std::time::Duration;

use tokio::time::Instant;

use super::{earliest, fire_due, Cx, Source, Timed};
use crate::daemon::reconciler::{Cause, Reconciler, Turn};
use crate::daemon::timers::Timers;

/// A source with one timer, re-armed `every` after it fires (None: one shot).
struct Tick {
    at: Option<Instant>,
    every: Option<Duration>,
    fired: Vec<Instant>,
}

impl Source for Tick {
    type Event = ();
    async fn next(&mut self) -> anyhow::Result<()> {
        std::future::pending().await
    }
    fn on_event(&mut self, _: (), _: &mut Cx<'_>) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    fn next_deadline(&self) -> Option<Instant> {
        self.at
    }
    fn on_deadline(&mut self, now: Instant, cx: &mut Cx<'_>) {
        self.fired.push(now);
        self.at = self.every.map(|e| now + e);
        cx.turn.add(Cause::Keying);
    }
}

fn tick(at: Option<Instant>, every: Option<Duration>) -> Tick {
    Tick {
        at,
        every,
        fired: vec![],
    }
}

/// A reconciler over the dual-stack example (read only: nothing is written).
fn reconciler(o: &crate::daemon::Options) -> Reconciler {
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = std::env::temp_dir().join(format!("xa-sources-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(repo.join("examples/keys/site.key"), dir.join("site.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::Permissions::from_mode(0o600);
    std::fs::set_permissions(dir.join("site.key"), mode).unwrap();
    let files = crate::load::PolicyFiles {
        config: repo.join("examples/dual-stack.toml"),
        key: dir.join("site.key"),
        max_policy_size: 1 << 24,
        ..crate::load::PolicyFiles::default()
    };
    let sock = crate::kernel::open().expect("netlink socket");
    Reconciler::start(&files, sock, o).expect("reconciler")
}

#[tokio::test(start_paused = true)]
async fn the_loop_wakes_at_the_earliest_source_and_fires_only_the_due() {
    let o = crate::daemon::Options {
        flush_on_exit: false,
        metrics: None,
        resync: Duration::from_secs(60),
        debounce: Duration::from_millis(100),
        announce: false,
        first_packets: crate::daemon::first_packets::FirstPackets::System,
    };
    let mut rec = reconciler(&o);
    let t0 = Instant::now();
    let s = Duration::from_secs;
    let mut a = tick(Some(t0 + s(5)), Some(s(5)));
    let mut b = tick(Some(t0 + s(2)), None);
    let mut none: Option<Tick> = None;
    let mut some = Some(tick(Some(t0 + s(3)), None));
    assert_eq!(earliest(&[&a, &b, &none, &some]), Some(t0 + s(2)));
    assert_eq!(earliest(&[&none]), None);
    let mut timers = Timers::new(&o, t0, None, None);
    let mut turn_at = |now: Instant, list: &mut [&mut dyn Timed]| {
        let mut turn = Turn::default();
        let mut cx = Cx {
            rec: &mut rec,
            timers: &mut timers,
            turn: &mut turn,
        };
        fire_due(list, now, &mut cx);
        turn.cause
    };
    // Before any deadline: nothing fires, no reconcile.
    tokio::time::advance(s(1)).await;
    let now = Instant::now();
    assert_eq!(
        turn_at(now, &mut [&mut a, &mut b, &mut none, &mut some]),
        None
    );
    // At b's deadline only b fires, and asks for its reconcile.
    tokio::time::sleep_until(earliest(&[&a, &b, &none, &some]).unwrap()).await;
    let now = Instant::now();
    let cause = turn_at(now, &mut [&mut a, &mut b, &mut none, &mut some]);
    assert_eq!(cause, Some(Cause::Keying));
    assert_eq!((a.fired.len(), b.fired.len()), (0, 1));
    assert_eq!(b.next_deadline(), None, "one shot");
    // Late (at 6 s): the optional source and a fire once each; a re-arms from now.
    tokio::time::advance(s(4)).await;
    let now = Instant::now();
    turn_at(now, &mut [&mut a, &mut b, &mut none, &mut some]);
    assert_eq!(a.fired, vec![t0 + s(6)]);
    assert_eq!(some.as_ref().unwrap().fired, vec![t0 + s(6)]);
    assert_eq!(earliest(&[&a, &b, &none, &some]), Some(t0 + s(11)));
}
