//! The mode and traffic selectors of our Child SAs (RFC 7296 §1.3.1, §2.9), in IKE_AUTH
//! and CREATE_CHILD_SA alike: transport mode between the two hosts, or tunnel mode between
//! the networks of [`super::Config::tunnel`] (kept in the IKE SA, so rekeys keep them).
//! A transport-mode Child SA may be narrowed to one protocol and port range
//! ([`super::Config::ports`]): the responder then answers a wider proposal with the
//! narrowed selectors and refuses one that does not cover them (RFC 7296 §2.9).

use super::ike_sa::IkeSa;
use super::proposal::{covers_all, within_all};
use super::Ports;
use crate::codec::{notify, Notify, Payload, TrafficSelector};
use std::net::IpAddr;

/// The USE_TRANSPORT_MODE notify our Child SA messages carry in transport mode only
/// (tunnel mode is the default, RFC 7296 §1.3.1).
pub(super) fn mode_notify(sa: &IkeSa) -> Option<Payload> {
    (sa.tunnel.is_none())
        .then(|| Payload::Notify(Notify::new(notify::USE_TRANSPORT_MODE, Vec::new())))
}

/// TSi and TSr of our Child SAs, from the point of view of the exchange's initiator.
pub(super) fn selectors(sa: &IkeSa, we_initiate: bool) -> [Payload; 2] {
    let (us, them) = match &sa.tunnel {
        None => transport_selectors(sa),
        Some(t) => (t.local.clone(), t.remote.clone()),
    };
    let (i, r) = if we_initiate { (us, them) } else { (them, us) };
    [Payload::TsI(i), Payload::TsR(r)]
}

/// Responder: whether the peer's mode and selectors (TSi, TSr) cover what our Child SAs
/// need; we answer with exactly ours.
pub(super) fn request_fits(
    sa: &IkeSa,
    transport: bool,
    ts_i: &[TrafficSelector],
    ts_r: &[TrafficSelector],
) -> Result<(), u16> {
    if transport != sa.tunnel.is_none() {
        return Err(notify::NO_PROPOSAL_CHOSEN);
    }
    let ok = match &sa.tunnel {
        None => {
            let (us, them) = transport_selectors(sa);
            covers_all(ts_i, &them) && covers_all(ts_r, &us)
        }
        Some(t) => covers_all(ts_i, &t.remote) && covers_all(ts_r, &t.local),
    };
    ok.then_some(()).ok_or(notify::TS_UNACCEPTABLE)
}

/// Initiator: whether the responder's mode and selectors lie within what we asked.
pub(super) fn answer_fits(
    sa: &IkeSa,
    transport: bool,
    ts_i: &[TrafficSelector],
    ts_r: &[TrafficSelector],
) -> bool {
    transport == sa.tunnel.is_none()
        && match &sa.tunnel {
            None => {
                let (us, them) = transport_selectors(sa);
                within_all(ts_i, &us) && within_all(ts_r, &them)
            }
            Some(t) => within_all(ts_i, &t.local) && within_all(ts_r, &t.remote),
        }
}

/// Our and the peer's selector of a transport-mode Child SA: the two hosts, every
/// protocol, or narrowed to the IKE SA's protocol and ports.
pub(super) fn transport_selectors(sa: &IkeSa) -> (Vec<TrafficSelector>, Vec<TrafficSelector>) {
    let one = |addr: IpAddr, ports: Option<(u8, (u16, u16))>| {
        let mut ts = TrafficSelector::host(addr);
        if let Some((protocol, (start, end))) = ports {
            (ts.protocol, ts.start_port, ts.end_port) = (protocol, start, end);
        }
        vec![ts]
    };
    let p = sa.ports;
    (
        one(sa.local.ip(), p.map(|p| (p.protocol, p.local))),
        one(sa.remote.ip(), p.map(|p| (p.protocol, p.remote))),
    )
}

/// Initiator: the protocol and ports a responder narrowed a transport-mode answer to
/// (one selector each side, one protocol), so the kernel SAs carry no more than agreed.
pub(super) fn narrowed(ts_i: &[TrafficSelector], ts_r: &[TrafficSelector]) -> Option<Ports> {
    match (ts_i, ts_r) {
        ([i], [r]) if i.protocol != 0 && i.protocol == r.protocol => Some(Ports {
            protocol: i.protocol,
            local: (i.start_port, i.end_port),
            remote: (r.start_port, r.end_port),
        }),
        _ => None,
    }
}
