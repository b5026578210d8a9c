//! What must hold of any load, whatever the text: every diagnostic is located inside the
//! file, and a policy that loads keeps the promises `model.rs` makes to the compiler.
//! Shared by the proptest harness (`tests/fuzz.rs`) and the coverage-guided fuzz targets
//! (`fuzz/`), which include this file by path.

use policy_schema::{Diagnostic, Endpoint, Policy};

/// Diagnostics are located at a line of the text and a column within (or just past) it.
pub fn check_located(text: &str, diags: &[Diagnostic]) {
    let lines: Vec<&str> = text.split('\n').collect();
    for d in diags {
        assert!(
            d.line >= 1 && d.line <= lines.len(),
            "{d} (of {} lines)",
            lines.len()
        );
        let width = lines[d.line - 1].chars().count();
        assert!(
            d.col >= 1 && d.col <= width + 1,
            "{d} (line is {width} characters)"
        );
        assert!(!d.message.is_empty() && !d.message.contains('\n'), "{d:?}");
    }
}

/// What `model.rs` promises about a validated policy.
pub fn check_invariants(p: &Policy) {
    let known = |e: &Endpoint| match e {
        Endpoint::Zone(n) => p.zone(n).is_some(),
        Endpoint::Host(n) => p.host(n).is_some(),
        Endpoint::Cluster(n) => p.cluster(n).is_some(),
        Endpoint::Authority(n) => p.authority(n).is_some(),
        Endpoint::Any | Endpoint::Prefix(_) => true,
    };
    for r in &p.rules {
        assert!(!r.from.is_empty() && !r.to.is_empty());
        assert!(r.from.iter().chain(&r.to).all(known), "{r:?}");
        assert!(r.ports.iter().all(|pr| pr.lo >= 1 && pr.lo <= pr.hi));
        assert!(r.ports.is_empty() || r.protocol.is_some_and(|x| x.has_ports()));
        assert!(
            r.admits.all().iter().all(|a| p.authority(a).is_some()),
            "{r:?}"
        );
        assert!(r.identities.is_empty() || !r.admits.is_empty(), "{r:?}");
    }
    for a in &p.authorities {
        assert!(!a.ca_certificates.is_empty(), "{a:?}");
        assert!(a
            .ca_certificates
            .iter()
            .chain(&a.crls)
            .all(|f| f.is_absolute()));
    }
    for c in &p.clusters {
        assert!(!c.members.is_empty() && c.members.iter().all(|m| p.host(m).is_some()));
    }
    for h in &p.hosts {
        assert!(!h.addresses.is_empty());
        assert!(h.zones.iter().all(|z| p.zone(z).is_some()));
    }
    let mut names: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
    names.sort_unstable();
    assert!(
        names.windows(2).all(|w| w[0] != w[1]),
        "duplicate host names"
    );
    assert!(p.ownership.spi.0 >= 256 && p.ownership.spi.0 <= p.ownership.spi.1);
    assert!(p.defaults.rekey_interval >= 10);
}
