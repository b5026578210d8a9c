//! Two gateways keyed by the policy's admission: a tunnel rule with `key-exchange =
//! "ikev2"` gives tunnel-mode SAs between the gateways' addresses, with the networks'
//! selectors and the reqid of the tunnel policies' template, the compiler's static SAs
//! making way; a gateway whose certificate does not carry its address is refused.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use ike::cert::testpki;
use policy_schema::{Action, Cipher, Endpoint, KeyExchange, Mode, Policy};

use super::testnet::{ip, Net, A, B, CLEAN};
use super::tests::{acquire, both_up, outbound, outbound_has_peer_inbound, settings};
use super::{Admission, FailureKind};
use crate::ike_setup::PolicyAdmission;
use crate::model::{PolicyAction, SaDir, Selector};
use crate::plan::testkit::{authority, host, identity, net, rule, seed};
use crate::plan::{desired, Layout, Timestamp};

/// gw-a (A) guards 192.168.1.0/24, gw-b (B) 192.168.2.0/24 (and 192.168.3.0/24 when
/// `two_nets`); one tunnel rule between them, keyed over IKEv2; corp vouches for both.
fn gateways(two_nets: bool) -> Policy {
    let mut p = seed();
    let mut a = host("gw-a", &[A], 8);
    a.gateway_for = vec![net("192.168.1.0/24")];
    let mut b = host("gw-b", &[B], 9);
    b.gateway_for = vec![net("192.168.2.0/24")];
    let mut to = vec![Endpoint::Prefix(net("192.168.2.0/24"))];
    if two_nets {
        b.gateway_for.push(net("192.168.3.0/24"));
        to.push(Endpoint::Prefix(net("192.168.3.0/24")));
    }
    p.hosts.extend([a, b]);
    let mut r = rule(
        "a-b",
        vec![Endpoint::Prefix(net("192.168.1.0/24"))],
        to,
        Action::Require,
    );
    r.mode = Mode::Tunnel;
    r.cipher = Cipher::AesGcm256;
    r.key_exchange = KeyExchange::Ikev2;
    p.rules.insert(0, r);
    p.authorities.push(authority("corp"));
    p
}

fn admissions(p: &Policy) -> [Arc<dyn Admission>; 2] {
    let of = |h: &str| -> Arc<dyn Admission> { Arc::new(PolicyAdmission::new(p, h, &settings())) };
    [of("gw-a"), of("gw-b")]
}

fn tunnel_reqid(p: &Policy) -> u32 {
    Layout::new(p).reqid(Cipher::AesGcm256, Mode::Tunnel)
}

#[test]
fn gateways_negotiate_tunnel_sas_between_their_networks() {
    for two_nets in [false, true] {
        let p = gateways(two_nets);
        let mut n = Net::admitted(settings(), CLEAN, 3, |_, _, _| (), admissions(&p));
        assert!(n.a.acquire(n.now, &acquire(A, B, 7)));
        let ok = n.run_until(Duration::from_secs(60), both_up, |_| ());
        assert!(
            ok,
            "{:#?}\n{:#?}",
            n.a.desired_states(),
            n.b.desired_states()
        );
        outbound_has_peer_inbound(&n);
        // One network each side pins the selector; several leave it open (the outer
        // addresses bind the SA), as the compiler does for static tunnel SAs.
        let want = if two_nets {
            Selector::between(net("0.0.0.0/0"), net("0.0.0.0/0"))
        } else {
            Selector::between(net("192.168.1.0/24"), net("192.168.2.0/24"))
        };
        for (k, sa) in n.a.desired_states() {
            assert_eq!(sa.spec.mode, Mode::Tunnel, "{k}");
            assert_eq!(sa.spec.reqid, tunnel_reqid(&p));
            let (src, dst, sel) = match sa.meta.dir {
                SaDir::Out => (ip(A), ip(B), want),
                SaDir::In => (ip(B), ip(A), crate::plan::mirror(&want)),
            };
            assert_eq!((sa.spec.src, k.dst, sa.spec.sel), (src, dst, sel));
        }
        // Rekeys keep the tunnel: after two rekey intervals the SAs are new and the same kind.
        let first = outbound(&n.a)[0].0;
        n.run_for(Duration::from_secs(90), outbound_has_peer_inbound);
        let (k, sa) = outbound(&n.a).remove(0);
        assert_ne!(k, first, "rekeyed");
        assert_eq!((sa.spec.mode, sa.spec.sel), (Mode::Tunnel, want));
    }
}

#[test]
fn the_compiler_leaves_ikev2_tunnels_to_keying() {
    let mut p = gateways(false);
    let local: BTreeSet<_> = [ip(A)].into();
    let template_reqids = |p: &Policy| {
        let d = desired(p, &identity(p, 8), &local, Timestamp(1_000_000)).unwrap();
        let reqids: BTreeSet<u32> = (d.policies.values())
            .filter_map(|s| match &s.spec.action {
                PolicyAction::Protect(t) => Some(t.iter().map(|t| t.reqid).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        let tunnel_sas = d
            .states
            .values()
            .filter(|s| s.spec.mode == Mode::Tunnel)
            .count();
        (reqids, tunnel_sas)
    };
    let (reqids, states) = template_reqids(&p);
    assert!(reqids.contains(&tunnel_reqid(&p)));
    assert_eq!(states, 0, "no static SAs: keying makes them");
    p.rules[0].key_exchange = KeyExchange::Static;
    assert!(
        template_reqids(&p).1 > 0,
        "static tunnel SAs when the rule says static"
    );
}

#[test]
fn a_gateway_whose_certificate_lacks_its_address_is_refused() {
    let p = gateways(false);
    // B holds a corp certificate, but for another address than its inventory entry's.
    let edit = |pki: &_, _: &mut _, b: &mut ike::sa::Config| {
        *b = testpki::config(pki, pki, "10.0.0.9", 22);
    };
    let mut n = Net::admitted(settings(), CLEAN, 4, edit, admissions(&p));
    assert!(n.a.acquire(n.now, &acquire(A, B, 7)));
    n.run_for(Duration::from_secs(30), |_| ());
    // (B, the impostor, answered before it learnt its refusal: only A's side matters.)
    assert!(
        n.a.desired_states().is_empty(),
        "{:#?}",
        n.a.desired_states()
    );
    assert_eq!(n.a.counters().failures_of(FailureKind::NotAdmitted), 1);
}
