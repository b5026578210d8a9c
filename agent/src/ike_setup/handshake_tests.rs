//! The policy's admission inside real keying: a host outside the inventory starts IKEv2
//! towards `site` on a simulated network; `site` keys it with the rule's reqid when its
//! certificate is admitted, and counts the refusal when it is not.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ike::cert::testpki::rcgen::SanType;
use ike::cert::testpki::{now as wall_now, Pki, TestKey};
use ike::cert::{CertVerifier, RevocationMode};
use ike::codec::Id;
use ike::rng::SeededRng;
use ike::sa::Config;
use ike::testnet::{Channel, Faults};
use policy_schema::{Cipher, Mode};

use super::admission::tests::{policy, POLICY};
use super::*;
use crate::keying::{lifetime, Acquire, FailureKind, Keying, Terms};
use crate::model::Selector;
use crate::plan::host_net;

const SITE: &str = "10.10.0.10";
const LAPTOP: &str = "10.30.0.7";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The laptop's side: keys (laptop, site) and admits whoever authenticates.
struct Open;

impl Admission for Open {
    fn terms(&self, _: IpAddr, _: IpAddr) -> Option<Terms> {
        Some(Terms::transport(1, 64, lifetime(Duration::from_secs(3600))))
    }
    fn admit(&self, _: &ike::sa::Admission<'_>) -> bool {
        true
    }
}

/// A verifier trusting corp and partner under the policy's names.
fn verifier(corp: &Pki, partner: &Pki) -> CertVerifier {
    let mut v = CertVerifier::new();
    for (name, pki) in [("corp", corp), ("partner", partner)] {
        v.add_authority(name, &[&pki.ca_der], &[], RevocationMode::Relaxed)
            .unwrap();
    }
    v
}

/// Site (policy admission) and a laptop whose certificate `issuer` made with `dns`.
fn pair(issuer: &Pki, dns: &str) -> (Keying, Keying, Instant) {
    let (corp, partner) = (Pki::new("Corp CA", 1), Pki::new("Partner CA", 2));
    let mut site_config = ike::cert::testpki::config(&corp, &corp, SITE, 21);
    site_config.verifier = verifier(&corp, &partner);
    let key = TestKey::new(33);
    let cert = issuer.leaf(&key, 33, |p| {
        p.subject_alt_names = vec![
            SanType::IpAddress(ip(LAPTOP)),
            SanType::DnsName(dns.try_into().unwrap()),
        ];
    });
    let laptop_config = Config::new(
        key.signing_key(),
        vec![cert],
        Id::from_ip(ip(LAPTOP)),
        verifier(&corp, &partner),
    );
    let p = policy(POLICY);
    let start = Instant::now();
    let site = Keying::new(
        site_config,
        Box::new(SeededRng::new(1)),
        (start, wall_now()),
        settings(&p),
        Arc::new(PolicyAdmission::new(&p, "site", &settings(&p))),
    );
    let laptop = Keying::new(
        laptop_config,
        Box::new(SeededRng::new(2)),
        (start, wall_now()),
        Default::default(),
        Arc::new(Open),
    );
    (site, laptop, start)
}

/// The laptop sends to site; both run for up to 20 s of simulated time.
fn run(site: &mut Keying, laptop: &mut Keying, start: Instant) {
    let acquire = Acquire {
        local: ip(LAPTOP),
        remote: ip(SITE),
        sel: Selector::between(host_net(ip(LAPTOP)), host_net(ip(SITE))),
        seq: 7,
    };
    assert!(laptop.acquire(start, &acquire));
    let mut channel = Channel::new(Faults::NONE, 3);
    let (mut now, end) = (start, start + Duration::from_secs(20));
    loop {
        for k in [&mut *site, &mut *laptop] {
            while let Some(t) = k.poll_transmit(now) {
                channel.send(now, t);
            }
        }
        let next = [
            channel.next_arrival(),
            site.poll_timeout(),
            laptop.poll_timeout(),
        ];
        match next.into_iter().flatten().min() {
            Some(n) if n <= end => now = now.max(n),
            _ => return,
        }
        for t in channel.arrivals(now) {
            let to = if t.to.ip() == ip(SITE) {
                &mut *site
            } else {
                &mut *laptop
            };
            to.handle(now, t.from, t.to, &t.payload);
        }
        for k in [&mut *site, &mut *laptop] {
            if k.poll_timeout().is_some_and(|t| t <= now) {
                k.handle_timeout(now);
            }
        }
    }
}

#[test]
fn a_corp_holder_gets_sas_with_the_rules_reqid() {
    let corp = Pki::new("Corp CA", 1);
    let (mut site, mut laptop, start) = pair(&corp, "lap7.corp.example");
    run(&mut site, &mut laptop, start);
    let states = site.desired_states();
    assert_eq!(states.len(), 2, "one inbound and one outbound SA at site");
    let reqid = crate::plan::Layout::new(&policy(POLICY)).reqid(Cipher::AesGcm128, Mode::Transport);
    assert!(states.values().all(|s| s.spec.reqid == reqid));
    assert_eq!(site.counters().failures_of(FailureKind::NotAdmitted), 0);
}

#[test]
fn a_partner_holder_and_a_lookalike_are_refused_and_counted() {
    let (corp, partner) = (Pki::new("Corp CA", 1), Pki::new("Partner CA", 2));
    for (issuer, dns) in [
        (&partner, "h.partner.example"),
        (&corp, "lap7.corp.example.evil.net"),
    ] {
        let (mut site, mut laptop, start) = pair(issuer, dns);
        run(&mut site, &mut laptop, start);
        assert!(site.desired_states().is_empty(), "{dns}: no SA at site");
        assert!(
            laptop.desired_states().is_empty(),
            "{dns}: no SA at the laptop"
        );
        assert_eq!(
            site.counters().failures_of(FailureKind::NotAdmitted),
            1,
            "{dns}"
        );
    }
}
