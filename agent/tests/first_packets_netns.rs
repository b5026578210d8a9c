//! `run --first-packets` in a namespace of its own: `queue` sets the namespace's
//! net.core.xfrm_larval_drop to 0 and puts the previous value back when dropped; `system`
//! leaves it alone; the root namespace's value never changes. Skips without root.
//!   cargo test -p agent --test first_packets_netns

mod support;

use agent::daemon::first_packets::{FirstPackets, Larval};
use agent::kernel::larval;
use support::ns::{privileged, TestNetns};

#[test]
fn queue_sets_the_namespace_to_queue_and_puts_it_back() {
    if !privileged("queue_sets_the_namespace_to_queue_and_puts_it_back") {
        return;
    }
    let root_before = larval::drops().expect("read the root namespace's setting");
    let ns = TestNetns::new("larval");
    ns.run(|| {
        assert!(
            larval::drops().unwrap(),
            "a new namespace drops (kernel default)"
        );
        let (l, shown) = Larval::start(FirstPackets::Queue);
        assert_eq!(shown, "queued");
        assert!(!larval::drops().unwrap(), "queue while the daemon runs");
        drop(l);
        assert!(larval::drops().unwrap(), "restored at exit");

        let (l, shown) = Larval::start(FirstPackets::System);
        assert_eq!(shown, "dropped");
        drop(l);
        assert!(larval::drops().unwrap(), "system: left alone");

        // Already queueing (an admin's choice): nothing to restore.
        larval::set_drops(false).unwrap();
        let (l, shown) = Larval::start(FirstPackets::Queue);
        assert_eq!(shown, "queued");
        drop(l);
        assert!(!larval::drops().unwrap(), "the admin's 0 stays");
    });
    assert_eq!(
        larval::drops().unwrap(),
        root_before,
        "root namespace untouched"
    );
}
