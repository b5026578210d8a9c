//! Rules that can never match because an earlier rule takes all their traffic. First match
//! wins and rules are mirrored, so rule j is dead if its (from, to) lies inside an earlier
//! rule's (from, to) or (to, from) and its protocol and ports inside that rule's (ports are
//! on the `to` side, so a mirrored match only counts when the earlier rule has no ports).
//! The test is per prefix (each of j's prefixes inside one of i's), which can miss a rule
//! shadowed only by a union of prefixes but never warns about a rule that can match.

mod index;

use ipnet::IpNet;

use super::resolve::{covered, Sides};
use crate::model::{PortRange, Protocol};
use crate::raw::{RawPolicy, RawRule};
use crate::report::Report;

/// What one rule selects, resolved.
struct Selector<'s> {
    from: &'s [IpNet],
    to: &'s [IpNet],
    protocol: Option<Protocol>,
    ports: Vec<PortRange>,
}

impl<'s> Selector<'s> {
    fn of(r: &RawRule, (from, to): &'s (Vec<IpNet>, Vec<IpNet>)) -> Option<Selector<'s>> {
        if !r.origin.complete {
            return None;
        }
        let s = Selector {
            from,
            to,
            protocol: r.protocol.as_ref().map(|p| p.v),
            ports: r.ports.iter().map(|p| p.v).collect(),
        };
        // A side that resolves to nothing (an empty zone) matches nothing: being "inside"
        // another rule would be vacuous, and the empty zone has its own warning.
        (!s.from.is_empty() && !s.to.is_empty()).then_some(s)
    }

    /// Everything `inner` matches, `self` matches too.
    fn contains(&self, inner: &Selector) -> bool {
        if !self.contains_protocol(inner) {
            return false;
        }
        let straight = covered(inner.from, self.from) && covered(inner.to, self.to);
        if straight && self.contains_ports(inner) {
            return true;
        }
        // Mirrored, `inner`'s ports sit on the side `self` leaves unconstrained, and `self`'s
        // ports on the side `inner` leaves open: contained only if `self` has no ports.
        let mirrored = covered(inner.from, self.to) && covered(inner.to, self.from);
        mirrored && self.ports.is_empty()
    }

    fn contains_protocol(&self, inner: &Selector) -> bool {
        self.protocol.is_none() || inner.protocol == self.protocol
    }

    /// Ports on the `to` side (empty = all).
    fn contains_ports(&self, inner: &Selector) -> bool {
        self.ports.is_empty()
            || (!inner.ports.is_empty()
                && inner
                    .ports
                    .iter()
                    .all(|ip| self.ports.iter().any(|op| op.contains(ip))))
    }
}

pub(crate) fn check(rep: &mut Report, raw: &RawPolicy, sides: &Sides) {
    let each = raw.rules.iter().zip(sides);
    let selectors: Vec<Option<Selector>> = each.map(|(r, s)| Selector::of(r, s)).collect();
    for (j, by) in first_shadows(&selectors).into_iter().enumerate() {
        let Some(i) = by else { continue };
        let (ri, rj) = (&raw.rules[i], &raw.rules[j]);
        let msg = format!(
            "{}: rule is fully shadowed by {} at {} and can never match (first match wins; move it above that rule or remove it)",
            rj.origin.label,
            ri.origin.label,
            rep.pos(ri.origin.at)
        );
        rep.warn(rj.origin.at, msg);
    }
}

/// For each rule, the first earlier rule that contains it. Rules are indexed as they go
/// (`index::Earlier`), so each rule is tested only against the earlier rules that could
/// contain it — not against every earlier rule, which made 10,000 rules take seconds.
fn first_shadows(selectors: &[Option<Selector>]) -> Vec<Option<usize>> {
    let mut earlier = index::Earlier::default();
    let mut out = Vec::with_capacity(selectors.len());
    for (j, s) in selectors.iter().enumerate() {
        let Some(sj) = s else {
            out.push(None);
            continue;
        };
        let by = earlier
            .candidates(sj)
            .into_iter()
            .find(|&i| selectors[i].as_ref().is_some_and(|si| si.contains(sj)));
        out.push(by);
        earlier.insert(j, sj);
    }
    out
}

#[cfg(test)]
#[path = "shadow_tests.rs"]
mod tests;
