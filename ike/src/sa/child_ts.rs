//! The mode and traffic selectors of our Child SAs (RFC 7296 §1.3.1, §2.9), in IKE_AUTH
//! and CREATE_CHILD_SA alike: transport mode between the two hosts, or tunnel mode between
//! the networks of [`super::Config::tunnel`] (kept in the IKE SA, so rekeys keep them).

use super::ike_sa::IkeSa;
use super::proposal::{covers_all, covers_host, within_all, within_host};
use crate::codec::{notify, Notify, Payload, TrafficSelector};

/// The USE_TRANSPORT_MODE notify our Child SA messages carry in transport mode only
/// (tunnel mode is the default, RFC 7296 §1.3.1).
pub(super) fn mode_notify(sa: &IkeSa) -> Option<Payload> {
    (sa.tunnel.is_none())
        .then(|| Payload::Notify(Notify::new(notify::USE_TRANSPORT_MODE, Vec::new())))
}

/// TSi and TSr of our Child SAs, from the point of view of the exchange's initiator.
pub(super) fn selectors(sa: &IkeSa, we_initiate: bool) -> [Payload; 2] {
    let (us, them) = match &sa.tunnel {
        None => (
            vec![TrafficSelector::host(sa.local.ip())],
            vec![TrafficSelector::host(sa.remote.ip())],
        ),
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
        None => covers_host(ts_i, sa.remote.ip()) && covers_host(ts_r, sa.local.ip()),
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
            None => within_host(ts_i, sa.local.ip()) && within_host(ts_r, sa.remote.ip()),
            Some(t) => within_all(ts_i, &t.local) && within_all(ts_r, &t.remote),
        }
}
