//! A partner CA's host (A, outside the inventory) admitted by one port rule of web (B):
//! whatever A proposes, both sides' SAs carry only that rule's traffic (TCP to web's 443),
//! so the kernel drops anything else A sends inside them; a proposal missing the service
//! gets no SA at all.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ike::cert::{CertVerifier, RevocationMode};
use ike::sa::Ports;
use policy_schema::{Cipher, Mode};

use super::testnet::{ip, Net, A, B, CLEAN};
use super::tests::{acquire, both_up, settings};
use super::{lifetime, Admission, Terms};
use crate::ike_setup::PolicyAdmission;
use crate::model::{PortMatch, SaDir, Selector};
use crate::plan::{host_net, mirror, Layout};

const POLICY: &str = r#"
version = 1

[[hosts]]
name = "web"
addresses = ["10.0.0.2"]
public-key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="

[[authorities]]
name = "partner"
ca-certificates = ["/etc/xfrm-agent/ca/partner.pem"]
revocation = "relaxed"

[[exemptions]]
name = "ike"
protocol = "udp"
ports = [500, 4500]

[[rules]]
name = "partner-https"
from = ["ca:partner"]
to = ["host:web"]
protocol = "tcp"
ports = [443]
action = "require"

[[rules]]
name = "web-isolation"
from = ["any"]
to = ["host:web"]
action = "require"
"#;

const TCP: u8 = 6;

fn policy(text: &str) -> policy_schema::Policy {
    policy_schema::load("federation.toml", text)
        .unwrap_or_else(|d| panic!("{d}"))
        .policy
}

/// The partner's side: its own IKE stack proposing `ports` (`None`: the whole host).
struct Partner(Option<Ports>);

impl Admission for Partner {
    fn terms(&self, local: IpAddr, remote: IpAddr) -> Option<Terms> {
        ((local, remote) == (ip(A), ip(B))).then(|| Terms {
            ports: self.0,
            ..Terms::transport(1, 64, lifetime(Duration::from_secs(60)))
        })
    }
    fn admit(&self, _: &ike::sa::Admission<'_>) -> bool {
        true
    }
}

/// A (the partner's host) and web (B, trusting the test CA as authority "partner").
fn federation(partner: Partner, seed: u64) -> Net {
    let web: Arc<dyn Admission> =
        Arc::new(PolicyAdmission::new(&policy(POLICY), "web", &settings()));
    let edit = |pki: &ike::cert::testpki::Pki, _: &mut _, b: &mut ike::sa::Config| {
        let mut v = CertVerifier::new();
        let crl = pki.crl(&[], 2030);
        v.add_authority("partner", &[&pki.ca_der], &[&crl], RevocationMode::Strict)
            .unwrap();
        b.verifier = v;
    };
    Net::admitted(settings(), CLEAN, seed, edit, [Arc::new(partner), web])
}

/// A → web, TCP from any port to 443.
fn https() -> Selector {
    let mut sel = Selector::between(host_net(ip(A)), host_net(ip(B)));
    sel.proto = TCP;
    sel.dport = PortMatch::exact(443);
    sel
}

/// Whether `sel` lets a TCP packet to `dport` through (as the kernel's state check does).
fn passes(sel: &Selector, dport: u16) -> bool {
    let port = |m: PortMatch, p: u16| p & m.mask == m.port & m.mask;
    (sel.proto == 0 || sel.proto == TCP) && port(sel.dport, dport)
}

#[test]
fn a_partner_gets_only_its_rules_traffic_whatever_it_proposes() {
    let wide = None;
    let narrowed = Some(Ports {
        protocol: TCP,
        local: (0, u16::MAX),
        remote: (443, 443),
    });
    for (seed, proposal) in [(5, wide), (6, narrowed)] {
        let mut n = federation(Partner(proposal), seed);
        assert!(n.a.acquire(n.now, &acquire(A, B, 7)));
        assert!(n.run_until(Duration::from_secs(30), both_up, |_| ()));
        let reqid = Layout::new(&policy(POLICY)).reqid(Cipher::AesGcm128, Mode::Transport);
        for (k, sa) in n.b.desired_states() {
            let (from_a, sel) = match sa.meta.dir {
                SaDir::In => (true, sa.spec.sel),
                SaDir::Out => (false, mirror(&sa.spec.sel)),
            };
            assert_eq!(sel, https(), "{k} (in: {from_a})");
            assert_eq!(sa.spec.reqid, reqid);
            assert!(passes(&sel, 443) && !passes(&sel, 22), "{sel}");
        }
        // The partner's side carries the same narrowing (what web agreed to).
        for (_, sa) in n.a.desired_states() {
            let out = match sa.meta.dir {
                SaDir::Out => sa.spec.sel,
                SaDir::In => mirror(&sa.spec.sel),
            };
            assert_eq!(out, https());
        }
    }
}

#[test]
fn a_partner_proposing_another_service_gets_no_sa() {
    let ssh = Ports {
        protocol: TCP,
        local: (0, u16::MAX),
        remote: (22, 22),
    };
    let mut n = federation(Partner(Some(ssh)), 8);
    assert!(n.a.acquire(n.now, &acquire(A, B, 7)));
    n.run_for(Duration::from_secs(30), |_| ());
    assert!(
        n.b.desired_states().is_empty(),
        "{:#?}",
        n.b.desired_states()
    );
    assert!(
        n.a.desired_states().is_empty(),
        "{:#?}",
        n.a.desired_states()
    );
}
