//! What the policy model says about IKEv2 peers: which authorities each rule admits, and
//! how its SAs are keyed.

use policy_schema::{load, Admission, KeyExchange, Revocation, Scope};

fn valid() -> policy_schema::Policy {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/valid/authorities.toml");
    let text = std::fs::read_to_string(path).expect("corpus file");
    load("authorities.toml", &text).expect("valid").policy
}

fn admits(from: &[&str], to: &[&str]) -> Admission {
    let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
    Admission {
        from: own(from),
        to: own(to),
    }
}

#[test]
fn authorities_are_read_as_written() {
    let p = valid();
    let corp = p.authority("corp").expect("corp");
    assert_eq!(corp.scope, Scope::Any);
    assert_eq!(corp.revocation, Revocation::Strict);
    assert_eq!(corp.crls.len(), 1);
    assert_eq!(corp.identities.len(), 2);
    let partner = p.authority("partner").expect("partner");
    assert_eq!(
        (partner.scope, partner.revocation),
        (Scope::Named, Revocation::Relaxed)
    );
    assert_eq!(partner.ca_certificates.len(), 2);
}

#[test]
fn rules_admit_named_authorities_and_broad_ones_behind_address_ranges() {
    let p = valid();
    let rule = |n: &str| p.rules.iter().find(|r| r.name == n).expect(n);
    // A partner only where named; the broad corp CA does not reach host:web through it.
    assert_eq!(rule("partner-https").admits, admits(&["partner"], &[]));
    // Host-to-host: inventory only, keyed by IKEv2 because the rule says so.
    let pfs = rule("inventory-pfs");
    assert!(pfs.admits.is_empty());
    assert_eq!(pfs.key_exchange, KeyExchange::Ikev2);
    // `any` and a zone are address ranges: corp holders may be on either side.
    let intranet = rule("intranet");
    assert_eq!(intranet.admits, admits(&["corp"], &["corp"]));
    assert_eq!(intranet.key_exchange, KeyExchange::Static);
}

#[test]
fn clear_rules_admit_no_authority() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/valid/authorities.toml"
    ))
    .expect("corpus file");
    let text = text.replace(
        "to = [\"zone:intranet\"]\naction = \"require\"",
        "to = [\"zone:intranet\"]\naction = \"permit\"",
    );
    let p = load("authorities.toml", &text).expect("valid").policy;
    let r = p.rules.iter().find(|r| r.name == "intranet").expect("rule");
    assert!(r.admits.is_empty(), "{:?}", r.admits);
}

#[test]
fn defaults_set_the_keying_of_rules_that_name_none() {
    let text = "version = 1\n[defaults]\nkey-exchange = \"ikev2\"\n[[rules]]\nname = \"r\"\nfrom = [\"any\"]\nto = [\"10.0.0.0/8\"]\naction = \"require\"\n";
    let p = load("p.toml", text).expect("valid").policy;
    assert_eq!(p.defaults.key_exchange, KeyExchange::Ikev2);
    assert_eq!(p.rules[0].key_exchange, KeyExchange::Ikev2);
    assert!(
        p.rules[0].admits.is_empty(),
        "no authorities: inventory only"
    );
}

#[test]
fn the_summary_says_who_each_rule_admits() {
    let lines = valid().admission_summary();
    let want = [
        "authority corp: scope any, revocation strict, 1 CA file(s), 1 CRL file(s), 2 identity pattern(s)",
        "authority partner: scope named, revocation relaxed, 2 CA file(s), 0 CRL file(s), 1 identity pattern(s)",
        "rule partner-https: from [ca:partner] inventory (static keys) + ca:partner holders (IKEv2) | to [host:web] inventory (static keys) | identities dn:OU=Integration",
        "rule inventory-pfs: from [host:site] inventory (IKEv2) | to [host:web] inventory (IKEv2)",
        "rule intranet: from [any] inventory (static keys) + ca:corp holders (IKEv2) | to [zone:intranet] inventory (static keys) + ca:corp holders (IKEv2)",
    ];
    assert_eq!(lines, want);
    let plain = load("p.toml", "version = 1\n").expect("valid").policy;
    assert!(plain.admission_summary().is_empty());
}
