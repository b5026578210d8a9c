//! The indexed shadow check against its definition: for every rule, the first earlier rule
//! that contains it, found by trying every earlier rule (the check as it was, quadratic).

use proptest::prelude::*;

use super::*;

/// The definition, kept as the oracle.
fn first_shadows_quadratic(selectors: &[Option<Selector>]) -> Vec<Option<usize>> {
    (0..selectors.len())
        .map(|j| {
            let sj = selectors[j].as_ref()?;
            let earlier = selectors[..j].iter().enumerate();
            earlier
                .filter_map(|(i, s)| Some((i, s.as_ref()?)))
                .find(|(_, si)| si.contains(sj))
                .map(|(i, _)| i)
        })
        .collect()
}

/// Prefixes that nest and overlap a lot (so containment is common), in both families.
const NETS: [&str; 10] = [
    "0.0.0.0/0",
    "10.0.0.0/8",
    "10.1.0.0/16",
    "10.1.2.0/24",
    "10.1.2.3/32",
    "10.2.0.0/16",
    "10.1.3.0/24",
    "::/0",
    "fd00::/16",
    "fd00:1::/32",
];

const PORTS: [(u16, u16); 6] = [
    (80, 80),
    (443, 443),
    (80, 90),
    (1, 65535),
    (1000, 2000),
    (85, 85),
];

fn nets() -> impl Strategy<Value = Vec<IpNet>> {
    proptest::collection::vec(0..NETS.len(), 1..3)
        .prop_map(|ix| ix.into_iter().map(|i| NETS[i].parse().unwrap()).collect())
}

#[derive(Clone, Debug)]
struct Spec {
    from: Vec<IpNet>,
    to: Vec<IpNet>,
    protocol: Option<Protocol>,
    ports: Vec<PortRange>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let protocol = prop_oneof![
        Just(None),
        Just(Some(Protocol::Tcp)),
        Just(Some(Protocol::Udp))
    ];
    let ports = proptest::collection::vec(0..PORTS.len(), 0..3);
    (nets(), nets(), protocol, ports).prop_map(|(from, to, protocol, ports)| Spec {
        from,
        to,
        ports: match protocol {
            None => Vec::new(),
            Some(_) => ports
                .into_iter()
                .map(|i| PortRange {
                    lo: PORTS[i].0,
                    hi: PORTS[i].1,
                })
                .collect(),
        },
        protocol,
    })
}

fn selectors(specs: &[Spec]) -> Vec<Option<Selector<'_>>> {
    specs
        .iter()
        .map(|s| {
            Some(Selector {
                from: &s.from,
                to: &s.to,
                protocol: s.protocol,
                ports: s.ports.clone(),
            })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The index finds exactly the rule the definition finds, for every rule.
    #[test]
    fn indexed_equals_quadratic(specs in proptest::collection::vec(spec(), 1..40)) {
        let s = selectors(&specs);
        prop_assert_eq!(first_shadows(&s), first_shadows_quadratic(&s));
    }
}

/// Wide and narrow port ranges, and mirrored containment, by hand.
#[test]
fn ports_and_mirroring() {
    let net = |s: &str| -> Vec<IpNet> { vec![s.parse().unwrap()] };
    let (any, a, b) = (net("0.0.0.0/0"), net("10.1.0.0/16"), net("10.2.0.0/16"));
    let sel = |from, to, ports: &[(u16, u16)]| Selector {
        from,
        to,
        protocol: Some(Protocol::Tcp),
        ports: ports.iter().map(|&(lo, hi)| PortRange { lo, hi }).collect(),
    };
    let rules = vec![
        Some(sel(&any, &b, &[(1, 1024)])),
        Some(sel(&a, &b, &[(443, 443)])),
        Some(sel(&b, &a, &[])),
        Some(sel(&a, &b, &[(8080, 8080)])),
        Some(sel(&a, &b, &[(22, 22)])),
    ];
    let got = first_shadows(&rules);
    assert_eq!(got, first_shadows_quadratic(&rules));
    assert_eq!(got, vec![None, Some(0), None, Some(2), Some(0)]);
}
