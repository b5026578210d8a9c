//! `explain` and `matrix` name how ESP is keyed: static keys, or IKEv2 with the rule and
//! the authorities whose certificates vouch for the ends.

use policy_schema::{Endpoint, KeyExchange};

use super::matrix::{policy_endpoints, Matrix, Service};
use super::*;
use crate::plan::testkit::{authority, rule, seed};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn out(p: &Policy, src: &str, dst: &str) -> Explanation {
    let f = Flow {
        src: ip(src),
        dst: ip(dst),
        proto: TCP,
        port: 443,
    };
    explain(p, &Locations::none(), &f)
}

/// The seed with site ↔ db keyed over IKEv2 (a rule before the intranet's).
fn site_db_ikev2() -> Policy {
    let mut p = seed();
    let mut r = rule(
        "db-pfs",
        vec![Endpoint::Host("site".into())],
        vec![Endpoint::Host("db".into())],
        Action::Require,
    );
    r.key_exchange = KeyExchange::Ikev2;
    p.rules.insert(0, r);
    p.authorities.push(authority("corp"));
    p
}

#[test]
fn an_ikev2_pair_names_its_rule_and_authority_and_others_stay_static() {
    let p = site_db_ikev2();
    let e = out(&p, "10.10.0.10", "10.10.0.11");
    assert_eq!(e.outcome, Transport::Esp);
    let want = Keying::Ikev2 {
        rule: "db-pfs".into(),
        authorities: vec!["corp".into()],
    };
    assert_eq!(
        (e.forward.keying.as_ref(), e.reply.keying.as_ref()),
        (Some(&want), Some(&want))
    );
    assert!(
        e.forward
            .reason
            .contains("IKEv2 (rule db-pfs, certificates of corp)"),
        "{}",
        e.forward.reason
    );
    let e = out(&p, "10.20.0.20", "10.10.0.10");
    assert_eq!(e.forward.keying, Some(Keying::Static));
    assert!(
        e.forward.reason.contains("have keys"),
        "{}",
        e.forward.reason
    );
    // Clear or dropped legs name no keying.
    let e = out(&p, "10.30.0.30", "10.10.0.10");
    assert_eq!((e.forward.keying, e.reply.keying), (None, None));
}

#[test]
fn an_ikev2_tunnel_is_named_at_its_gateways() {
    let mut p = super::tests::east_west();
    p.authorities.push(authority("corp"));
    assert_eq!(
        out(&p, "10.1.0.5", "10.2.0.7").forward.keying,
        Some(Keying::Static)
    );
    p.rules[0].key_exchange = KeyExchange::Ikev2;
    let e = out(&p, "10.1.0.5", "10.2.0.7");
    assert_eq!(e.outcome, Transport::Esp);
    assert!(
        e.forward.keying.as_ref().is_some_and(Keying::is_ikev2),
        "{e:#?}"
    );
    assert!(
        e.reply.reason.contains("keyed over IKEv2 (rule east-west"),
        "{}",
        e.reply.reason
    );
}

#[test]
fn the_matrix_marks_ikev2_cells() {
    let p = site_db_ikev2();
    let locs = Locations::none();
    let svcs = [Service {
        proto: TCP,
        port: 443,
    }];
    let m = Matrix::build(&Model::new(&p, &locs), &policy_endpoints(&p), &svcs);
    assert_eq!(m.hosts.names, ["site", "db", "mp"]);
    assert!(m.hosts.cell(0, 1, 0).ikev2() && m.hosts.cell(1, 0, 0).ikev2());
    assert!(!m.hosts.cell(2, 0, 0).ikev2() && !m.hosts.cell(0, 2, 0).ikev2());
    let text = table::render(&m, false);
    assert!(text.contains("esp+ike"), "{text}");
    assert!(text.contains("+ike: keyed over IKEv2"), "{text}");
    let static_text = table::render(
        &Matrix::build(
            &Model::new(&seed(), &locs),
            &policy_endpoints(&seed()),
            &svcs,
        ),
        false,
    );
    assert!(!static_text.contains("+ike"), "{static_text}");
}
