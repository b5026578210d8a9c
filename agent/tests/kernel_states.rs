//! Engine tests for SAs: they need a kernel with ESP, so they run inside User-Mode Linux:
//!
//!   scripts/uml-run -- cargo test -p agent --test kernel_states
//!
//! Elsewhere (the host kernel has no ESP) each test skips with a one-line reason. Every
//! test still works in its own throw-away namespace.

mod support;

use agent::engine::reconcile;
use agent::kernel;
use agent::model::*;
use policy_schema::Ownership;
use support::ns::{privileged, TestNetns};
use support::*;

fn own() -> Ownership {
    Ownership::default()
}

/// ESP and the algorithms are loaded (uml-run modprobes them).
fn esp(test: &str) -> bool {
    if !privileged(test) {
        return false;
    }
    let ok = std::path::Path::new("/sys/module/esp4").exists();
    assert!(
        ok || std::env::var_os("XFRM_REQUIRE_ESP").is_none(),
        "{test}: XFRM_REQUIRE_ESP is set but this kernel has no ESP"
    );
    if !ok {
        eprintln!("skipping {test}: no ESP in this kernel (run it in scripts/uml-run)");
    }
    ok
}

fn sample() -> Desired {
    let mut d = desired_from(SAMPLE_STATES);
    d.policies = desired_from(SAMPLE_POLICIES).policies;
    d
}

#[test]
fn states_read_back_identical_and_second_apply_is_noop() {
    if !esp("states_read_back_identical") {
        return;
    }
    let ns = TestNetns::new("st");
    let d = sample();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert_installs_identical(&mut sock, &d, &own());
    });
    // The outbound SA starts at the op's initial sequence (ESN high and low halves).
    let st = ns.ip(&[
        "xfrm",
        "state",
        "get",
        "src",
        "10.0.0.1",
        "dst",
        "10.0.0.2",
        "proto",
        "esp",
        "spi",
        "0x40000102",
    ]);
    assert!(st.contains("oseq-hi 0x1, oseq 0x5"), "{st}");
    assert!(
        st.contains("replay-window 1024") || st.contains("replay_window 1024"),
        "{st}"
    );
}

#[test]
fn lifetime_change_is_one_updsa_and_key_change_a_replace() {
    if !esp("lifetime_change_is_one_updsa") {
        return;
    }
    let ns = TestNetns::new("upd");
    let d1 = sample();
    let mut d2 = d1.clone();
    let k_life = SaKey {
        dst: "10.0.0.2".parse().unwrap(),
        spi: 0x4000_0102,
    };
    d2.states.get_mut(&k_life).unwrap().spec.lifetime = Lifetime {
        soft_secs: 9000,
        hard_secs: 9100,
    };
    let k_key = SaKey {
        dst: "10.0.0.1".parse().unwrap(),
        spi: 0x4000_0101,
    };
    d2.states.get_mut(&k_key).unwrap().spec.alg = alg("gcm", 0x55);
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert!(reconcile(&mut sock, &d1, &own(), false).unwrap().verified);
        let out = reconcile(&mut sock, &d2, &own(), false).unwrap();
        let kinds: Vec<String> = out.plan.ops.iter().map(|o| o.to_string()).collect();
        assert_eq!(out.plan.ops.len(), 3, "{kinds:#?}");
        assert!(matches!(out.plan.ops[0].kind, OpKind::DelSa(k) if k == k_key));
        assert!(matches!(out.plan.ops[1].kind, OpKind::AddSa(k, ..) if k == k_key));
        assert!(matches!(out.plan.ops[2].kind, OpKind::UpdateSa(k, _) if k == k_life));
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        assert!(out.verified, "{:#?}", out.remaining);
    });
}

#[test]
fn state_deleted_by_someone_else_is_restored() {
    if !esp("state_deleted_by_someone_else_is_restored") {
        return;
    }
    let ns = TestNetns::new("sdel");
    let d = sample();
    let d2 = d.clone();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert!(reconcile(&mut sock, &d, &own(), false).unwrap().verified);
    });
    ns.ip(&[
        "xfrm",
        "state",
        "delete",
        "dst",
        "10.0.0.3",
        "proto",
        "esp",
        "spi",
        "0x40000203",
    ]);
    // A foreign SA (reqid outside our range) must survive.
    ns.ip(&[
        "xfrm",
        "state",
        "add",
        "src",
        "10.0.0.1",
        "dst",
        "10.0.0.9",
        "proto",
        "esp",
        "spi",
        "0x40000999",
        "reqid",
        "7",
        "mode",
        "transport",
        "aead",
        "rfc4106(gcm(aes))",
        "0x0102030405060708090a0b0c0d0e0f1011121314",
        "128",
    ]);
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        let out = reconcile(&mut sock, &d2, &own(), false).unwrap();
        assert_eq!(out.plan.ops.len(), 1, "{}", render_plan(&out.plan));
        assert!(matches!(&out.plan.ops[0].kind, OpKind::AddSa(k, ..) if k.spi == 0x4000_0203));
        assert_eq!(out.plan.ops[0].label, "peer c out epoch 3");
        assert!(out.verified);
        let obs = kernel::observe(&mut sock, &own()).unwrap();
        assert_eq!(obs.foreign_states.len(), 1);
    });
}

#[test]
fn compiled_plan_installs_and_reads_back_identical() {
    if !esp("compiled_plan_installs_and_reads_back_identical") {
        return;
    }
    let ns = TestNetns::new("cst");
    let d = support::policy::varied_desired();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert_installs_identical(&mut sock, &d, &own());
    });
}

/// The daemon's reload path reads SAs one by one (batched GETs): for the keys asked, the
/// same objects a dump shows; a key the kernel does not hold is absent.
#[test]
fn reading_sa_keys_sees_what_a_dump_sees_of_them() {
    if !esp("reading_sa_keys_sees_what_a_dump_sees_of_them") {
        return;
    }
    let ns = TestNetns::new("sk");
    let d = sample();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert!(reconcile(&mut sock, &d, &own(), false).unwrap().verified);
        let all = kernel::observe(&mut sock, &own()).unwrap();
        let mut keys: std::collections::BTreeSet<SaKey> = all.states.keys().copied().collect();
        assert!(keys.len() >= 2, "the sample has SAs");
        let first = *keys.iter().next().unwrap();
        let absent = SaKey {
            spi: first.spi ^ 0x0f00,
            ..first
        };
        keys.insert(absent);
        let some = kernel::observe_keys(&mut sock, &own(), &Default::default(), &keys).unwrap();
        assert_eq!(some.states, all.states, "every SA, decoded alike");
        assert!(!some.states.contains_key(&absent));
    });
}
