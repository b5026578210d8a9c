//! Admission from a policy: which pairs IKEv2 keys, and which authenticated peers get in.
//! Seen from `site` (10.10.0.10) under the reference's federation example.

use std::net::{IpAddr, SocketAddr};

use ike::cert::testpki::rcgen::{DnType, SanType};
use ike::cert::testpki::{Pki, TestKey};
use ike::codec::{Id, IdType};
use policy_schema::Cipher;

use super::*;
use crate::keying::Admission as _;

pub(in crate::ike_setup) const POLICY: &str = r#"
version = 1

[zones]
intranet = ["10.10.0.0/24"]

[[hosts]]
name = "site"
addresses = ["10.10.0.10"]
public-key = "afHYlNMD37507eZrZqsbd+jZV3lhnbG36Ad3QnFbgQE="

[[hosts]]
name = "db"
addresses = ["10.10.0.11"]
public-key = "t8bqXUBXDk5Wy7r3iL2JDfz1/ooQRPrlEmOAyVtb0xk="

[[hosts]]
name = "web"
addresses = ["10.10.0.12"]
public-key = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="

[[authorities]]
name = "corp"
ca-certificates = ["/etc/xfrm-agent/ca/corp.pem"]
revocation = "relaxed"
scope = "any"
identities = ["dns:*.corp.example"]

[[authorities]]
name = "partner"
ca-certificates = ["/etc/xfrm-agent/ca/partner.pem"]
revocation = "relaxed"
identities = ["dn:O=Partner Ltd"]

[[exemptions]]
name = "ike"
protocol = "udp"
ports = [500, 4500]

[[rules]]
name = "db-pfs"
from = ["host:site"]
to = ["host:db"]
action = "require"
key-exchange = "ikev2"

[[rules]]
name = "partner-https"
from = ["ca:partner", "ca:corp"]
to = ["host:site"]
protocol = "tcp"
ports = [443]
action = "require"

[[rules]]
name = "intranet-isolation"
from = ["any"]
to = ["zone:intranet"]
action = "require"
"#;

const SITE: &str = "10.10.0.10";
const DB: &str = "10.10.0.11";
const WEB: &str = "10.10.0.12";
const LAPTOP: &str = "10.30.0.7";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub(in crate::ike_setup) fn policy(text: &str) -> Policy {
    policy_schema::load("test.toml", text)
        .unwrap_or_else(|d| panic!("{d}"))
        .policy
}

fn site() -> PolicyAdmission {
    PolicyAdmission::new(&policy(POLICY), "site", &Settings::default())
}

/// A certificate with this organisation and these SANs.
fn cert(pki: &Pki, org: &str, dns: &[&str], ips: &[&str]) -> Vec<u8> {
    pki.leaf(&TestKey::new(9), 9, |p| {
        p.distinguished_name = Default::default();
        p.distinguished_name.push(DnType::OrganizationName, org);
        p.distinguished_name.push(DnType::CommonName, "peer");
        let mut sans: Vec<SanType> = Vec::new();
        sans.extend(
            dns.iter()
                .map(|d| SanType::DnsName((*d).try_into().unwrap())),
        );
        sans.extend(ips.iter().map(|i| SanType::IpAddress(ip(i))));
        p.subject_alt_names = sans;
    })
}

/// Whether `site` admits the peer at `remote` holding `cert` from `authority`.
fn admits(a: &PolicyAdmission, remote: &str, authority: &str, cert: &[u8]) -> bool {
    let id = Id {
        id_type: IdType::DER_ASN1_DN,
        data: Vec::new(),
    };
    a.admit(&ike::sa::Admission {
        authority,
        subject: "peer",
        peer_id: &id,
        certificate: cert,
        local: SocketAddr::new(ip(SITE), 500),
        remote: SocketAddr::new(ip(remote), 500),
    })
}

#[test]
fn terms_cover_ikev2_pairs_only() {
    let p = policy(POLICY);
    let a = site();
    let reqid = crate::plan::Layout::new(&p).reqid(Cipher::AesGcm128, Mode::Transport);
    // (remote, keyed over IKEv2)
    let table = [
        (LAPTOP, true), // not in the inventory, corp admitted by scope "any"
        (DB, true),     // inventory, key-exchange = "ikev2"
        (WEB, false),   // inventory host with static keying: not offered IKE
        (SITE, false),  // ourselves
    ];
    for (remote, keyed) in table {
        let t = a.terms(ip(SITE), ip(remote));
        assert_eq!(t.is_some(), keyed, "{remote}");
        if let Some(t) = t {
            assert_eq!(t.reqid, reqid, "the catch-all template's reqid");
            assert_eq!(t.replay_window, p.defaults.replay_window);
        }
    }
    // Not our address, or mixed families: nothing.
    assert_eq!(a.terms(ip(DB), ip(LAPTOP)), None);
    assert_eq!(a.terms(ip(SITE), ip("2001:db8::7")), None);
    assert!(a.keys_any());
}

#[test]
fn request_rules_give_their_pairs_a_fallback_timeout() {
    let a = site();
    assert_eq!(
        a.terms(ip(SITE), ip(LAPTOP)).unwrap().fallback,
        None,
        "require"
    );
    let request = |text: &str, rule: &str| {
        let at = text.find(&format!("name = \"{rule}\"")).unwrap();
        let (head, tail) = text.split_at(at);
        format!(
            "{head}{}",
            tail.replacen("action = \"require\"", "action = \"request\"", 1)
        )
    };
    let text = POLICY.replace("[zones]", "[defaults]\nrequest-timeout = \"5s\"\n\n[zones]");
    let text = request(&text, "intranet-isolation");
    let a = PolicyAdmission::new(&policy(&text), "site", &Settings::default());
    // The laptop's chain still has the `require` port rule: its traffic needs the SA.
    assert_eq!(a.terms(ip(SITE), ip(LAPTOP)).unwrap().fallback, None);
    let text = request(&text, "partner-https");
    let a = PolicyAdmission::new(&policy(&text), "site", &Settings::default());
    let t = a.terms(ip(SITE), ip(LAPTOP)).expect("keyed");
    assert_eq!(t.fallback, Some(std::time::Duration::from_secs(5)));
    // site ↔ db is keyed by its own `require` rule first: no fallback.
    assert_eq!(a.terms(ip(SITE), ip(DB)).unwrap().fallback, None);
}

#[test]
fn a_host_without_ike_pairs_needs_no_ike() {
    let text = POLICY
        .replace("scope = \"any\"\n", "")
        .replace(
            "from = [\"ca:partner\", \"ca:corp\"]",
            "from = [\"host:web\"]",
        )
        .replace("key-exchange = \"ikev2\"", "");
    let p = policy(&text);
    let a = PolicyAdmission::new(&p, "site", &Settings::default());
    assert!(!a.keys_any());
    assert_eq!(a.terms(ip(SITE), ip(LAPTOP)), None);
}

#[test]
fn certificate_holders_are_admitted_by_every_rule_covering_the_pair() {
    let (corp, partner, rogue) = (
        Pki::new("corp", 1),
        Pki::new("partner", 2),
        Pki::new("x", 3),
    );
    let a = site();
    let good = cert(&corp, "Corp", &["lap7.corp.example"], &[LAPTOP]);
    let partner_cert = cert(&partner, "Partner Ltd", &["h.partner.example"], &[LAPTOP]);
    // (case, remote, authority, certificate, admitted)
    let table: Vec<(&str, &str, &str, Vec<u8>, bool)> = vec![
        ("corp laptop", LAPTOP, "corp", good.clone(), true),
        // A partner's holder matches partner-https, but its SA would also carry the
        // intranet rule's traffic (same reqid): refused.
        (
            "partner CA against the intranet rule",
            LAPTOP,
            "partner",
            partner_cert,
            false,
        ),
        (
            "lookalike: suffix without the dot",
            LAPTOP,
            "corp",
            cert(&corp, "Corp", &["lap7.evilcorp.example"], &[LAPTOP]),
            false,
        ),
        (
            "lookalike: the suffix itself",
            LAPTOP,
            "corp",
            cert(&corp, "Corp", &["corp.example"], &[LAPTOP]),
            false,
        ),
        (
            "lookalike: suffix then more",
            LAPTOP,
            "corp",
            cert(&corp, "Corp", &["a.corp.example.evil.net"], &[LAPTOP]),
            false,
        ),
        (
            "no SAN at all",
            LAPTOP,
            "corp",
            cert(&corp, "Corp", &[], &[]),
            false,
        ),
        (
            "unknown authority name",
            LAPTOP,
            "rogue",
            cert(&rogue, "Corp", &["x.corp.example"], &[]),
            false,
        ),
        (
            "garbage certificate",
            LAPTOP,
            "corp",
            b"not a certificate".to_vec(),
            false,
        ),
        // Inventory peers: a certificate of the own CA naming the address.
        (
            "db with its address",
            DB,
            "corp",
            cert(&corp, "Corp", &["db.corp.example"], &[DB]),
            true,
        ),
        (
            "db's address in another's cert",
            DB,
            "corp",
            good.clone(),
            false,
        ),
        (
            "partner CA claiming db",
            DB,
            "partner",
            cert(&partner, "Partner Ltd", &["db.partner.example"], &[DB]),
            false,
        ),
        (
            "static inventory host",
            WEB,
            "corp",
            cert(&corp, "Corp", &["web.corp.example"], &[WEB]),
            false,
        ),
    ];
    for (case, remote, authority, der, want) in table {
        assert_eq!(admits(&a, remote, authority, &der), want, "{case}");
    }
}

#[test]
fn no_exchange_where_no_authority_passes_every_rule() {
    // partner-https admits partner holders only, the intranet rule corp holders only:
    // nobody outside the inventory could be admitted, so site starts nothing.
    let text = POLICY.replace(
        "from = [\"ca:partner\", \"ca:corp\"]",
        "from = [\"ca:partner\"]",
    );
    let a = PolicyAdmission::new(&policy(&text), "site", &Settings::default());
    assert_eq!(a.terms(ip(SITE), ip(LAPTOP)), None);
    assert!(
        a.terms(ip(SITE), ip(DB)).is_some(),
        "inventory pairs are unaffected"
    );
}

#[test]
fn partner_holders_get_in_where_every_rule_names_them() {
    let text = POLICY.replace(
        "from = [\"any\"]\nto = [\"zone:intranet\"]",
        "from = [\"ca:partner\", \"any\"]\nto = [\"zone:intranet\"]",
    );
    let a = PolicyAdmission::new(&policy(&text), "site", &Settings::default());
    let partner = Pki::new("partner", 2);
    let ok = cert(&partner, "Partner Ltd", &["h.partner.example"], &[LAPTOP]);
    assert!(admits(&a, LAPTOP, "partner", &ok));
    let wrong_org = cert(
        &partner,
        "Partner Ltd Evil",
        &["h.partner.example"],
        &[LAPTOP],
    );
    assert!(!admits(&a, LAPTOP, "partner", &wrong_org), "dn:O= is exact");
}

#[test]
fn rule_identities_narrow_the_authority() {
    // The last rule (intranet-isolation) gets identities of its own.
    let text = format!("{POLICY}identities = [\"dns:*.lab.corp.example\"]\n");
    let a = PolicyAdmission::new(&policy(&text), "site", &Settings::default());
    let corp = Pki::new("corp", 1);
    let lab = cert(&corp, "Corp", &["h.lab.corp.example"], &[LAPTOP]);
    let office = cert(&corp, "Corp", &["h.office.corp.example"], &[LAPTOP]);
    assert!(admits(&a, LAPTOP, "corp", &lab));
    assert!(!admits(&a, LAPTOP, "corp", &office));
}

#[test]
fn cert_identity_reads_subject_and_sans() {
    let der = cert(
        &Pki::new("corp", 1),
        "Corp",
        &["a.corp.example"],
        &["10.0.0.9"],
    );
    let id = cert_identity(&der).unwrap();
    assert!(id.subject.contains(&("O".into(), "Corp".into())));
    assert!(id.subject.contains(&("CN".into(), "peer".into())));
    assert_eq!(id.dns, vec!["a.corp.example".to_string()]);
    assert_eq!(id.ips, vec![ip("10.0.0.9")]);
    assert_eq!(cert_identity(b"junk"), None);
}
