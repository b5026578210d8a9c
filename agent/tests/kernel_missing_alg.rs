//! A kernel with ESP that lacks one algorithm (ChaCha20-Poly1305): the SAs that need it
//! are refused and reported as one missing feature of one SA class; every other SA is
//! installed, then rotated with that class left out; the resync probe still finds it
//! missing. Runs inside User-Mode Linux booted without the ChaCha20 modules:
//!
//!   XFRM_UML_WITHOUT_MODULES="chacha20poly1305 chacha_generic poly1305_generic" \
//!     scripts/uml-run -- cargo test -p agent --test kernel_missing_alg
//!
//! (scripts/kernel-states-test does this.) Elsewhere it skips with a one-line reason.

mod support;

use std::collections::BTreeSet;

use agent::engine::{reconcile_with, still_blocked, Options};
use agent::kernel;
use agent::plan::diff::SaClass;
use policy_schema::Ownership;
use support::ns::{privileged, TestNetns};
use support::*;

const AES: &str = "
sa dst=10.0.0.2 spi=0x40000102 src=10.0.0.1 alg=gcm peer=b dir=out epoch=3
sa dst=10.0.0.1 spi=0x40000101 src=10.0.0.2 alg=gcm key=2 peer=b dir=in epoch=3
";
const CHACHA: &str = "
sa dst=10.0.0.3 spi=0x40000203 src=10.0.0.1 alg=chacha peer=c dir=out epoch=3
sa dst=10.0.0.1 spi=0x40000201 src=10.0.0.3 alg=chacha key=3 peer=c dir=in epoch=3
";
/// The next epoch: new SPIs and keys for both peers.
const AES_NEXT: &str = "
sa dst=10.0.0.2 spi=0x40000122 src=10.0.0.1 alg=gcm key=4 peer=b dir=out epoch=4
sa dst=10.0.0.1 spi=0x40000121 src=10.0.0.2 alg=gcm key=5 peer=b dir=in epoch=4
";
const CHACHA_NEXT: &str = "
sa dst=10.0.0.3 spi=0x40000223 src=10.0.0.1 alg=chacha key=6 peer=c dir=out epoch=4
sa dst=10.0.0.1 spi=0x40000221 src=10.0.0.3 alg=chacha key=7 peer=c dir=in epoch=4
";

fn own() -> Ownership {
    Ownership::default()
}

/// This kernel has ESP but was booted without ChaCha20-Poly1305.
fn without_chacha(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    let esp = std::path::Path::new("/sys/module/esp4").exists();
    let chacha = std::path::Path::new("/sys/module/chacha20poly1305").exists();
    let wanted = esp && !chacha;
    let required = std::env::var_os("XFRM_UML_WITHOUT_MODULES").is_some();
    assert!(
        !required || wanted,
        "{test}: booted to lack ChaCha20, but esp4 loaded: {esp}, chacha20poly1305 loaded: {chacha}"
    );
    if !wanted {
        eprintln!("skipping {test}: needs ESP without ChaCha20 (scripts/kernel-states-test)");
    }
    wanted
}

#[test]
fn one_missing_algorithm_blocks_its_class_only() {
    if !without_chacha("one_missing_algorithm_blocks_its_class_only") {
        return;
    }
    let ns = TestNetns::new("noalg");
    ns.run(|| {
        let mut sock = kernel::open().unwrap();
        let first = desired_from(&format!("{AES}{CHACHA}"));
        let none = BTreeSet::new();
        let uncounted = BTreeSet::new();
        let opts = |blocked| Options {
            dry_run: false,
            verify: true,
            blocked,
            only: None,
            count_packets: &uncounted,
        };
        // Every SA is tried once: the ChaCha20 ones are refused as one missing feature.
        let out = reconcile_with(&mut sock, &first, &own(), &opts(&none)).unwrap();
        let blocked = out.blocked();
        let classes: Vec<&SaClass> = blocked.keys().collect();
        assert_eq!(classes.len(), 1, "one class blocked: {blocked:?}");
        assert!(classes[0].1.contains("chacha20"), "{blocked:?}");
        assert_eq!(out.failed.len(), 2, "{:?}", out.failed);
        assert_eq!(out.other_failures().count(), 0);
        let have = kernel::observe(&mut sock, &own()).unwrap();
        let spis: BTreeSet<u32> = have.states.keys().map(|k| k.spi).collect();
        assert_eq!(
            spis,
            [0x40000101, 0x40000102].into(),
            "the AES-GCM SAs are in"
        );

        // The next epoch, with the class known missing: the AES-GCM SAs rotate, no
        // ChaCha20 write is sent (nothing fails), the policies' traffic stays held.
        let next = desired_from(&format!("{AES_NEXT}{CHACHA_NEXT}"));
        let blocked: BTreeSet<SaClass> = blocked.into_keys().collect();
        let out = reconcile_with(&mut sock, &next, &own(), &opts(&blocked)).unwrap();
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        let have = kernel::observe(&mut sock, &own()).unwrap();
        let spis: BTreeSet<u32> = have.states.keys().map(|k| k.spi).collect();
        assert_eq!(spis, [0x40000121, 0x40000122].into(), "rotated: {spis:x?}");

        // The resync probe writes one ChaCha20 SA: still refused.
        assert_eq!(still_blocked(&mut sock, &next, &blocked).unwrap(), blocked);
    });
}
