//! Privileged tests on this machine's kernel, each in its own throw-away network namespace.
//! Policies only (the host kernel has no ESP); SAs are covered by kernel_states in UML.
//! Skipped with a one-line reason when not root.

mod support;

use agent::engine::{flush, reconcile};
use agent::kernel::{self, ErrorKind};
use agent::model::*;
use agent::plan::diff::diff;
use policy_schema::Ownership;
use support::ns::{privileged, TestNetns};
use support::*;

fn own() -> Ownership {
    Ownership::default()
}

#[test]
fn installed_policies_read_back_identical_and_second_apply_is_noop() {
    if !privileged("installed_policies_read_back_identical") {
        return;
    }
    let ns = TestNetns::new("rb");
    let d = desired_from(SAMPLE_POLICIES);
    let n = d.policies.len();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        let out = reconcile(&mut sock, &d, &own(), false).unwrap();
        assert!(out.failed.is_empty(), "{:?}", out.failed);
        assert_eq!(out.applied, n);
        assert!(out.verified, "remaining: {:?}", out.remaining);
        let obs = kernel::observe(&mut sock, &own()).unwrap();
        assert_eq!(obs.policies.len(), n);
        let plan = diff(&d, &obs, &own());
        assert!(plan.ops.is_empty(), "{}", render_plan(&plan));
        let again = reconcile(&mut sock, &d, &own(), false).unwrap();
        assert_eq!(again.plan.ops.len(), 0);
        assert_eq!(again.applied, 0);
        assert!(again.verified);
    });
}

#[test]
fn changed_desired_set_yields_only_minimal_ops() {
    if !privileged("changed_desired_set_yields_only_minimal_ops") {
        return;
    }
    let ns = TestNetns::new("min");
    // One priority change (more precedence: no guard needed), one removal, one addition.
    let (d1, d2, [_, removed, _]) = two_versions();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert!(reconcile(&mut sock, &d1, &own(), false).unwrap().verified);
        let out = reconcile(&mut sock, &d2, &own(), false).unwrap();
        assert!(out.verified);
        let signs: Vec<char> = out.plan.ops.iter().map(|o| o.kind.sign()).collect();
        assert_eq!(out.plan.ops.len(), 3, "{}", render_plan(&out.plan));
        assert!(signs.contains(&'+') && signs.contains(&'~') && signs.contains(&'-'));
        assert!(out.plan.ops.contains(&Op {
            kind: OpKind::DelPolicy(removed),
            label: "stale: owned but not desired".into()
        }));
    });
}

#[test]
fn policy_deleted_by_someone_else_is_restored_and_nothing_else_touched() {
    if !privileged("policy_deleted_by_someone_else_is_restored") {
        return;
    }
    let ns = TestNetns::new("rst");
    let d = desired_from(SAMPLE_POLICIES);
    let d2 = d.clone();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert!(reconcile(&mut sock, &d, &own(), false).unwrap().verified);
    });
    ns.ip(&[
        "xfrm",
        "policy",
        "delete",
        "dir",
        "out",
        "src",
        "10.0.0.0/24",
        "dst",
        "10.0.0.0/24",
    ]);
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        let out = reconcile(&mut sock, &d2, &own(), false).unwrap();
        assert_eq!(out.plan.ops.len(), 1, "{}", render_plan(&out.plan));
        match &out.plan.ops[0].kind {
            OpKind::AddPolicy(k, _) => {
                assert_eq!(k.dir, Dir::Out);
                assert_eq!(k.sel.dst.to_string(), "10.0.0.0/24");
                assert_eq!(k.sel.proto, 0);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(out.plan.ops[0].label, "rule intranet");
        assert!(out.verified);
    });
}

#[test]
fn foreign_policies_survive_apply_and_flush() {
    if !privileged("foreign_policies_survive_apply_and_flush") {
        return;
    }
    let ns = TestNetns::new("frg");
    // Other priority (outside our band), and in-band but with a foreign reqid.
    ns.ip(&[
        "xfrm",
        "policy",
        "add",
        "dir",
        "out",
        "src",
        "10.0.0.0/24",
        "dst",
        "10.0.0.0/24",
        "priority",
        "100",
        "tmpl",
        "proto",
        "esp",
        "reqid",
        "5",
        "mode",
        "transport",
    ]);
    ns.ip(&[
        "xfrm",
        "policy",
        "add",
        "dir",
        "in",
        "src",
        "172.16.0.0/12",
        "dst",
        "172.16.0.0/12",
        "priority",
        "65600",
        "tmpl",
        "proto",
        "esp",
        "reqid",
        "6",
        "mode",
        "transport",
    ]);
    let before = ns.ip(&["xfrm", "policy", "show"]);
    let d = desired_from(SAMPLE_POLICIES);
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        let out = reconcile(&mut sock, &d, &own(), false).unwrap();
        assert_eq!(
            out.plan.conflicts.len(),
            1,
            "the out intranet key is foreign"
        );
        assert!(!out.verified, "a conflict is not a verified apply");
        assert!(out.failed.is_empty());
        let obs = kernel::observe(&mut sock, &own()).unwrap();
        assert_eq!(obs.foreign_policies.len(), 2);
        let f = flush(&mut sock, &own(), false).unwrap();
        assert!(f.verified && f.failed.is_empty());
        let obs = kernel::observe(&mut sock, &own()).unwrap();
        assert!(obs.policies.is_empty());
        assert_eq!(obs.foreign_policies.len(), 2);
    });
    assert_eq!(ns.ip(&["xfrm", "policy", "show"]), before);
}

#[test]
fn batch_errors_name_the_failing_object() {
    if !privileged("batch_errors_name_the_failing_object") {
        return;
    }
    let ns = TestNetns::new("bat");
    let d = desired_from(SAMPLE_POLICIES);
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        let mut ops: Vec<Op> = d
            .policies
            .iter()
            .map(|(k, p)| Op {
                kind: OpKind::AddPolicy(*k, p.spec.clone()),
                label: p.origin.to_string(),
            })
            .collect();
        // The fourth op adds what the second added: EEXIST for it, and only for it.
        let dup = ops[1].clone();
        ops.insert(3, dup.clone());
        let res = kernel::apply(&mut sock, &ops).unwrap();
        assert_eq!(res.len(), ops.len());
        for (i, r) in res.iter().enumerate() {
            if i == 3 {
                let e = r.as_ref().unwrap_err();
                assert_eq!(e.kind(), ErrorKind::Exists, "{e}");
            } else {
                assert!(r.is_ok(), "op {i} {}: {r:?}", ops[i]);
            }
        }
        // Deleting what is gone is done, not an error.
        let del = Op {
            kind: OpKind::DelPolicy(*d.policies.keys().next().unwrap()),
            label: "x".into(),
        };
        let res = kernel::apply(&mut sock, &[del.clone(), del]).unwrap();
        assert!(res.iter().all(Result::is_ok), "{res:?}");
    });
}

fn sa_failures(text: &'static str, expect_feature: &'static str, expect_text: &'static str) {
    let ns = TestNetns::new("esp");
    let d = desired_from(text);
    let n = d.states.len();
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        let out = reconcile(&mut sock, &d, &own(), false).unwrap();
        let missing = out.missing_features();
        assert_eq!(missing.len(), 1, "one message per apply: {missing:?}");
        assert_eq!(missing[0].ops, n);
        assert!(missing[0].feature.contains(expect_feature), "{missing:?}");
        assert!(missing[0].error.contains(expect_text), "{missing:?}");
        assert_eq!(out.other_failures().count(), 0);
        assert!(!out.verified);
    });
}

#[test]
fn missing_esp_is_one_clear_error() {
    if !privileged("missing_esp_is_one_clear_error") {
        return;
    }
    if std::path::Path::new("/proc/net/xfrm_stat").exists() && esp_available() {
        eprintln!("skipping missing_esp_is_one_clear_error: this kernel has ESP");
        return;
    }
    // cbc(aes) and hmac(sha256) exist here, so the kernel gets as far as the ESP type.
    sa_failures(
        "sa dst=10.0.0.2 spi=0x40000102 src=10.0.0.1 alg=cbc peer=b dir=out
         sa dst=10.0.0.1 spi=0x40000101 src=10.0.0.2 alg=cbc peer=b dir=in
         sa dst=10.0.0.1 spi=0x40000201 src=10.0.0.3 alg=cbc peer=c dir=in",
        "ESP (CONFIG_INET_ESP)",
        "Requested type not found",
    );
    sa_failures(
        "sa dst=fd00::1 spi=0x40000201 src=fd00::2 alg=cbc peer=c dir=in",
        "ESP (CONFIG_INET6_ESP)",
        "Requested type not found",
    );
    // No GCM in this kernel: the AEAD lookup fails first and names the algorithm.
    sa_failures(
        "sa dst=10.0.0.2 spi=0x40000102 src=10.0.0.1 alg=gcm peer=b dir=out
         sa dst=10.0.0.1 spi=0x40000101 src=10.0.0.2 alg=gcm peer=b dir=in",
        "rfc4106(gcm(aes))",
        "CONFIG_CRYPTO_GCM",
    );
}

/// ESP registered with the kernel (built in or loaded).
fn esp_available() -> bool {
    std::fs::read_to_string("/proc/net/protocols")
        .map(|_| std::path::Path::new("/sys/module/esp4").exists())
        .unwrap_or(false)
}

#[test]
fn compiled_policies_install_and_read_back_identical() {
    if !privileged("compiled_policies_install_and_read_back_identical") {
        return;
    }
    let ns = TestNetns::new("cmp");
    let mut d = support::policy::varied_desired();
    assert!(!d.policies.is_empty() && !d.states.is_empty());
    d.states.clear(); // no ESP here: SAs are checked in kernel_states (UML)
    ns.run(move || {
        let mut sock = kernel::open().unwrap();
        assert_installs_identical(&mut sock, &d, &own());
    });
}
