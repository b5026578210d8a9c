use super::*;

fn id() -> CertIdentity {
    CertIdentity {
        subject: vec![
            ("CN".into(), "lap7.corp.example".into()),
            ("O".into(), "Corp".into()),
            ("OU".into(), "Laptops".into()),
        ],
        dns: vec!["lap7.corp.example".into()],
        emails: vec!["ops@corp.example".into()],
        ips: vec!["10.20.0.7".parse().unwrap()],
    }
}

fn p(s: &str) -> IdentityPattern {
    IdentityPattern::parse(s).unwrap()
}

#[test]
fn patterns_match_what_they_say() {
    let id = id();
    for yes in [
        "dns:*.corp.example",
        "dns:LAP7.corp.example",
        "email:*@corp.example",
        "ip:10.20.0.0/16",
        "dn:O=corp, OU=Laptops",
        "dn:CN=*.corp.example",
    ] {
        assert!(p(yes).matches(&id), "{yes}");
    }
    for no in [
        "dns:*.evil.example",
        // The suffix must follow at least one more label, not stand alone.
        "dns:*.lap7.corp.example",
        "dns:corp.example",
        "email:*@evil.example",
        "ip:10.21.0.0/16",
        "dn:O=Corp,OU=Servers",
        "dn:C=DE",
    ] {
        assert!(!p(no).matches(&id), "{no}");
    }
}

#[test]
fn a_suffix_pattern_needs_more_than_the_suffix() {
    let id = CertIdentity {
        dns: vec!["corp.example".into(), "xcorp.example".into()],
        ..CertIdentity::default()
    };
    assert!(!p("dns:*.corp.example").matches(&id));
}

/// Names an attacker can get a certificate for must not pass for the organisation's.
#[test]
fn lookalike_identities_fail() {
    let evil = CertIdentity {
        subject: vec![
            ("CN".into(), "x,O=Corp".into()),
            ("O".into(), "Evil".into()),
        ],
        dns: vec![
            "evilcorp.example".into(),
            "corp.example.evil.example".into(),
        ],
        emails: vec![
            "a@evil.corp.example".into(),
            "corp.example@evil.example".into(),
        ],
        ips: vec!["10.200.0.1".parse().unwrap()],
    };
    for pattern in [
        "dns:*.corp.example",
        "dns:corp.example",
        "email:*@corp.example",
        "dn:O=Corp",
        "ip:10.20.0.0/16",
    ] {
        assert!(!p(pattern).matches(&evil), "{pattern}");
    }
    // A fullwidth "ｃ": no Unicode case folding or normalisation.
    let fullwidth = CertIdentity {
        dns: vec!["a.\u{ff43}orp.example".into()],
        ..CertIdentity::default()
    };
    assert!(!p("dns:*.corp.example").matches(&fullwidth));
}

#[test]
fn display_round_trips() {
    for s in [
        "dns:*.corp.example",
        "email:*@corp.example",
        "ip:10.20.0.0/16",
        "dn:O=Corp,OU=Laptops",
    ] {
        assert_eq!(p(s).to_string(), s);
    }
}

#[test]
fn bad_patterns_say_why() {
    for (s, want) in [
        ("corp.example", "expected dns:NAME"),
        ("dsn:x.example", "did you mean \"dns\""),
        ("dns:a*.example", "one \"*\""),
        ("dns:*", "suffix"),
        ("email:corp.example", "without \"@\""),
        ("ip:10.0.0.1/8", "10.0.0.0/8"),
        ("dn:Corp", "without \"=\""),
        ("dn:O-U=x", "bad dn attribute"),
    ] {
        let e = IdentityPattern::parse(s).unwrap_err();
        assert!(e.contains(want), "{s}: {e}");
    }
}
