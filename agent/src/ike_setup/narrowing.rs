//! Federation: a pair that no authority passes every rule of is keyed by one port rule,
//! its Child SA narrowed to that rule's protocol and ports (`PolicyAdmission::keying`).

use ike::sa::Ports;
use policy_schema::PortRange;

use super::{Link, Rule};
use crate::keying;

/// A rule's protocol and `to` ports as one selector: every port, or one range that an
/// XFRM port-and-mask holds; `None` when its ports need several selectors.
pub(super) fn service(protocol: u8, ports: &[PortRange]) -> Option<(u8, Option<(u16, u16)>)> {
    match ports {
        [] => Some((protocol, None)),
        [p] if keying::ports_fit(p.lo, p.hi) => Some((protocol, Some((p.lo, p.hi)))),
        _ => None,
    }
}

/// The chain's first ESP rule that admits an authority on the peer's side and is one
/// service, with the narrowing it gives, when no earlier rule of the chain overlaps its
/// traffic (the kernel would match that one first).
pub(super) fn narrowing<'a>(chain: &'a [Link<'a>]) -> Option<(&'a Link<'a>, Ports)> {
    let at = chain
        .iter()
        .position(|l| l.rule.esp && !l.admits.is_empty())?;
    let link = &chain[at];
    let (protocol, ports) = link.rule.service?;
    let overlaps = |r: &Rule| match r.service {
        Some((p, other)) => p == protocol && ranges_meet(other, ports),
        None => true,
    };
    if chain[..at].iter().any(|l| overlaps(l.rule)) || link.peer_from == link.peer_to {
        return None;
    }
    let (service, any) = (ports.unwrap_or((0, u16::MAX)), (0, u16::MAX));
    // Ports are the `to` side's: ours when the peer is on `from`.
    let (local, remote) = match link.peer_from {
        true => (service, any),
        false => (any, service),
    };
    Some((
        link,
        Ports {
            protocol,
            local,
            remote,
        },
    ))
}

/// Whether two port ranges (`None`: every port) share a port.
fn ranges_meet(a: Option<(u16, u16)>, b: Option<(u16, u16)>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.0 <= b.1 && b.0 <= a.1,
        _ => true,
    }
}
