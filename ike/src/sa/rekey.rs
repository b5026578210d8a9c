//! Child SA rekey with CREATE_CHILD_SA (RFC 7296 §1.3.3, §2.17), with a KE for perfect
//! forward secrecy (IKE SA rekeys: `ike_rekey`), including both ends rekeying one Child SA
//! at once (§2.8.1, §2.25.1). Not yet: new Child SAs.

use super::endpoint::Ctx;
use super::ike_auth::{derive_child, fresh_esp_spi};
use super::ike_sa::{error_notify, find_notify, IkeSa, State};
use super::proposal::{choose, covers_host, esp_proposals, within_host, Chosen};
use super::{info, ChildSa, Event};
use crate::codec::{exchange, notify, protocol, Ke, Message, Notify, Payload, TrafficSelector};
use crate::crypto::{DhGroup, KeyShare, Secret};
use crate::rng::random_vec;

/// Our rekey request in flight.
pub(super) struct Pending {
    old: (u32, u32),
    spi_in: u32,
    ni: Vec<u8>,
    share: Option<KeyShare>,
    /// The lowest nonce of the peer's rekey of the same Child SA, if ours collided with it.
    collision: Option<Vec<u8>>,
}

fn notify_with_spi(notify_type: u16, spi: u32) -> Payload {
    Payload::Notify(Notify {
        protocol: protocol::ESP,
        spi: spi.to_be_bytes().to_vec(),
        notify_type,
        data: Vec::new(),
    })
}

/// Starts rekeying our Child SA with inbound SPI `old_in`.
pub(super) fn start(sa: &mut IkeSa, ctx: &mut Ctx<'_>, old_in: u32) -> bool {
    let group = ctx
        .config
        .groups
        .first()
        .copied()
        .filter(|_| ctx.config.rekey_pfs);
    start_with(sa, ctx, old_in, group)
}

fn start_with(sa: &mut IkeSa, ctx: &mut Ctx<'_>, old_in: u32, group: Option<DhGroup>) -> bool {
    let Some(&old) = sa.children.iter().find(|c| c.0 == old_in) else {
        return false;
    };
    if sa.state != State::Established || sa.outstanding.is_some() {
        return false;
    }
    let share = group.map(|g| KeyShare::generate(g, ctx.rng));
    // All our groups, the KE's first, so the peer can ask for another (INVALID_KE_PAYLOAD).
    let offered: Vec<DhGroup> = match group {
        Some(first) => std::iter::once(first)
            .chain(ctx.config.groups.iter().copied().filter(|g| *g != first))
            .collect(),
        None => Vec::new(),
    };
    let spi_in = fresh_esp_spi(ctx);
    let ni = random_vec(ctx.rng, 32);
    let mut payloads = vec![
        notify_with_spi(notify::REKEY_SA, old_in),
        Payload::Notify(Notify::new(notify::USE_TRANSPORT_MODE, Vec::new())),
        Payload::Sa(esp_proposals(&ctx.config.esp_ciphers, spi_in, &offered)),
        Payload::Nonce(ni.clone()),
    ];
    payloads.extend(share.as_ref().map(|s| {
        Payload::Ke(Ke {
            group: s.group().number(),
            data: s.public().to_vec(),
        })
    }));
    payloads.extend(host_selectors(sa, true));
    let id = sa.next_request_id;
    let bytes = sa.seal(ctx, exchange::CREATE_CHILD_SA, false, id, &payloads);
    sa.next_request_id = id.wrapping_add(1);
    sa.send_request(ctx, id, bytes);
    sa.rekey = Some(Pending {
        old,
        spi_in,
        ni,
        share,
        collision: None,
    });
    true
}

/// TSi and TSr of the two hosts, from the point of view of the exchange's initiator.
fn host_selectors(sa: &IkeSa, we_initiate: bool) -> [Payload; 2] {
    let (us, them) = (
        TrafficSelector::host(sa.local.ip()),
        TrafficSelector::host(sa.remote.ip()),
    );
    let (i, r) = if we_initiate { (us, them) } else { (them, us) };
    [Payload::TsI(vec![i]), Payload::TsR(vec![r])]
}

/// The SA, nonce, KE and selectors of a CREATE_CHILD_SA message.
struct Parts<'a> {
    proposals: &'a [crate::codec::Proposal],
    nonce: &'a [u8],
    ke: Option<&'a Ke>,
    ts_i: &'a [TrafficSelector],
    ts_r: &'a [TrafficSelector],
    transport: bool,
}

fn parts(inner: &[Payload]) -> Option<Parts<'_>> {
    let mut p = Parts {
        proposals: &[],
        nonce: &[],
        ke: None,
        ts_i: &[],
        ts_r: &[],
        transport: false,
    };
    for payload in inner {
        match payload {
            Payload::Sa(s) => p.proposals = s,
            Payload::Nonce(n) => p.nonce = n,
            Payload::Ke(k) => p.ke = Some(k),
            Payload::TsI(t) => p.ts_i = t,
            Payload::TsR(t) => p.ts_r = t,
            Payload::Notify(n) if n.notify_type == notify::USE_TRANSPORT_MODE => p.transport = true,
            _ => {}
        }
    }
    (!p.proposals.is_empty() && !p.nonce.is_empty()).then_some(p)
}

/// The shared secret for `chosen`'s group with the peer's KE (none without PFS).
fn pfs_secret(
    chosen: &Chosen,
    ke: Option<&Ke>,
    share: Option<&KeyShare>,
) -> Result<Option<Secret>, u16> {
    let Some(group) = chosen.group else {
        return Ok(None);
    };
    let ke = ke
        .filter(|k| k.group == group.number())
        .ok_or(notify::INVALID_KE_PAYLOAD)?;
    let share = share
        .filter(|s| s.group() == group)
        .ok_or(notify::INVALID_KE_PAYLOAD)?;
    share
        .agree(&ke.data)
        .map(Some)
        .map_err(|_| notify::INVALID_SYNTAX)
}

/// Responder: a peer's CREATE_CHILD_SA request (only Child SA rekeys are accepted).
pub(super) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, datagram: &[u8], msg: &Message) {
    let Ok(inner) = sa.open(datagram, msg) else {
        return;
    };
    let id = msg.header.message_id;
    if super::ike_rekey::is_ike_rekey(&inner) {
        let payloads = super::ike_rekey::answer(sa, ctx, &inner)
            .unwrap_or_else(|(n, data)| vec![Payload::Notify(Notify::new(n, data))]);
        let bytes = sa.seal(ctx, exchange::CREATE_CHILD_SA, true, id, &payloads);
        return sa.send_response(ctx, id, bytes);
    }
    let (payloads, ready) = match answer(sa, ctx, &inner) {
        Ok((payloads, child, lowest)) => {
            // Both ends rekey this Child SA at once (RFC 7296 §2.8.1): remember their nonce.
            if let Some(ours) = sa.rekey.as_mut().filter(|p| child.rekeyed == Some(p.old.0)) {
                ours.collision = Some(lowest);
            }
            (payloads, Some(child))
        }
        Err((notify_type, data)) => (vec![Payload::Notify(Notify::new(notify_type, data))], None),
    };
    let bytes = sa.seal(ctx, exchange::CREATE_CHILD_SA, true, id, &payloads);
    sa.send_response(ctx, id, bytes);
    if let Some(child) = ready {
        sa.children.push((child.spi_in, child.spi_out));
        ctx.events.push(Event::ChildSaReady(Box::new(child)));
    }
}

type Refusal = (u16, Vec<u8>);

fn answer(
    sa: &IkeSa,
    ctx: &mut Ctx<'_>,
    inner: &[Payload],
) -> Result<(Vec<Payload>, ChildSa, Vec<u8>), Refusal> {
    let rekeyed = inner.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == notify::REKEY_SA && n.protocol == protocol::ESP => {
            Some(n.spi.as_slice())
        }
        _ => None,
    });
    let Some(old_out) = rekeyed else {
        return Err((notify::NO_ADDITIONAL_SAS, Vec::new()));
    };
    let old = sa
        .children
        .iter()
        .find(|c| old_out == c.1.to_be_bytes())
        .copied();
    let (old_in, _) = old.ok_or((notify::CHILD_SA_NOT_FOUND, Vec::new()))?;
    let p = parts(inner).ok_or((notify::INVALID_SYNTAX, Vec::new()))?;
    let no_proposal = (notify::NO_PROPOSAL_CHOSEN, Vec::new());
    let chosen = choose(
        p.proposals,
        protocol::ESP,
        &ctx.config.esp_ciphers,
        &ctx.config.groups,
    )
    .ok_or(no_proposal.clone())?;
    if !p.transport || chosen.proposal.spi.len() != 4 {
        return Err(no_proposal);
    }
    if !covers_host(p.ts_i, sa.remote.ip()) || !covers_host(p.ts_r, sa.local.ip()) {
        return Err((notify::TS_UNACCEPTABLE, Vec::new()));
    }
    let share = chosen
        .group
        .map(|g: DhGroup| KeyShare::generate(g, ctx.rng));
    let shared = pfs_secret(&chosen, p.ke, share.as_ref()).map_err(|n| {
        let wanted = chosen
            .group
            .map(|g| g.number().to_be_bytes().to_vec())
            .unwrap_or_default();
        (
            n,
            if n == notify::INVALID_KE_PAYLOAD {
                wanted
            } else {
                Vec::new()
            },
        )
    })?;
    let spi_out = u32::from_be_bytes(chosen.proposal.spi[..4].try_into().unwrap_or_default());
    let spi_in = fresh_esp_spi(ctx);
    let nr = random_vec(ctx.rng, 32);
    let exchange = (
        false,
        p.nonce,
        nr.as_slice(),
        shared.as_ref().map(Secret::expose),
    );
    let child = derive_child(sa, chosen.cipher, (spi_in, spi_out), exchange, Some(old_in));
    let mut proposal = chosen.proposal;
    proposal.spi = spi_in.to_be_bytes().to_vec();
    let mut payloads = vec![
        Payload::Notify(Notify::new(notify::USE_TRANSPORT_MODE, Vec::new())),
        Payload::Sa(vec![proposal]),
        Payload::Nonce(nr.clone()),
    ];
    payloads.extend(share.as_ref().map(|s| {
        Payload::Ke(Ke {
            group: s.group().number(),
            data: s.public().to_vec(),
        })
    }));
    payloads.extend(host_selectors(sa, false));
    let lowest = std::cmp::min(p.nonce.to_vec(), nr);
    Ok((payloads, child, lowest))
}

/// Initiator: the response to our rekey; on success the old Child SA is deleted.
pub(super) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, datagram: &[u8], msg: &Message) {
    let Ok(inner) = sa.open(datagram, msg) else {
        return;
    };
    sa.outstanding = None;
    if let Some(pending) = super::ike_rekey::take_pending(sa, msg) {
        return super::ike_rekey::on_response(sa, ctx, &inner, pending);
    }
    let Some(pending) = sa.rekey.take() else {
        return;
    };
    match accept(sa, ctx, &inner, &pending) {
        Ok((child, lowest))
            if pending
                .collision
                .as_ref()
                .is_some_and(|theirs| lowest < *theirs) =>
        {
            // Our exchange has the lowest nonce: its Child SA is the redundant one, which we
            // delete unreported; the peer deletes the old one (RFC 7296 §2.8.1).
            info::send_request(sa, ctx, &[info::esp_delete(child.spi_in)]);
        }
        Ok((child, _)) => {
            sa.children.push((child.spi_in, child.spi_out));
            ctx.events.push(Event::ChildSaReady(Box::new(child)));
            info::delete_child(sa, ctx, pending.old.0);
        }
        Err(notify::INVALID_KE_PAYLOAD) if pending.share.is_some() => {
            // The peer wants another PFS group: once, if we have it (RFC 7296 §1.3).
            let wanted = find_notify(&inner, notify::INVALID_KE_PAYLOAD)
                .and_then(|d| <[u8; 2]>::try_from(d).ok())
                .and_then(|d| DhGroup::from_number(u16::from_be_bytes(d)))
                .filter(|g| {
                    ctx.config.groups.contains(g)
                        && Some(*g) != pending.share.as_ref().map(KeyShare::group)
                });
            if !wanted.is_some_and(|g| start_with(sa, ctx, pending.old.0, Some(g))) {
                ctx.events.push(Event::ChildRefused {
                    sa: sa.id(),
                    notify: notify::INVALID_KE_PAYLOAD,
                });
            }
        }
        Err(notify::CHILD_SA_NOT_FOUND) if pending.collision.is_some() => {
            // The peer's rekey of the same Child SA completed first and it deleted the old
            // one before ours arrived (RFC 7296 §2.25.1): its Child SA is the survivor.
            tracing::debug!(sa = sa.id().0, "lost a Child SA rekey collision");
        }
        Err(notify) => ctx.events.push(Event::ChildRefused {
            sa: sa.id(),
            notify,
        }),
    }
}

fn accept(
    sa: &IkeSa,
    ctx: &Ctx<'_>,
    inner: &[Payload],
    pending: &Pending,
) -> Result<(ChildSa, Vec<u8>), u16> {
    if let Some(err) = error_notify(inner) {
        return Err(err);
    }
    let p = parts(inner).ok_or(notify::INVALID_SYNTAX)?;
    let groups: Vec<DhGroup> = pending.share.iter().map(KeyShare::group).collect();
    let chosen = Some(p.proposals)
        .filter(|ps| ps.len() == 1)
        .and_then(|ps| choose(ps, protocol::ESP, &ctx.config.esp_ciphers, &groups))
        .filter(|c| c.proposal.spi.len() == 4 && c.group == groups.first().copied() && p.transport)
        .ok_or(notify::NO_PROPOSAL_CHOSEN)?;
    if !within_host(p.ts_i, sa.local.ip()) || !within_host(p.ts_r, sa.remote.ip()) {
        return Err(notify::TS_UNACCEPTABLE);
    }
    let shared = pfs_secret(&chosen, p.ke, pending.share.as_ref())?;
    let spi_out = u32::from_be_bytes(chosen.proposal.spi[..4].try_into().unwrap_or_default());
    let exchange = (
        true,
        pending.ni.as_slice(),
        p.nonce,
        shared.as_ref().map(Secret::expose),
    );
    let child = derive_child(
        sa,
        chosen.cipher,
        (pending.spi_in, spi_out),
        exchange,
        Some(pending.old.0),
    );
    Ok((child, std::cmp::min(pending.ni.clone(), p.nonce.to_vec())))
}
