//! IKE SA rekey with CREATE_CHILD_SA (RFC 7296 §1.3.2, §2.18): a new IKE SA with new SPIs
//! and keys from SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr); the Child SAs move to
//! it, and the rekey's initiator deletes the old IKE SA. Its initiator is the new SA's
//! "original initiator".
//!
//! Both ends rekeying at once (§2.8.2): each answers the other's request, which makes two
//! new IKE SAs. The one whose exchange has the lowest of the four nonces is redundant: its
//! initiator deletes it, and the initiator of the other one deletes the old IKE SA. Until
//! the outcome is known the Child SAs stay with the old IKE SA (the answered exchange's
//! new SA holds a copy of the list), so they are moved exactly once, to the survivor.

use super::endpoint::Ctx;
use super::ike_sa::{error_notify, IkeSa, Role, State};
use super::proposal::{choose, ike_proposals};
use super::{info, init, log_keys, Event, KeyLog, SaId};
use crate::codec::{exchange, notify, protocol, Ke, Message, Payload, Proposal};
use crate::crypto::{derive_ike_keys, rekey_skeyseed, Cipher, DhGroup, KeyShare, Secret};
use crate::rng::random_vec;

/// Our IKE SA rekey request in flight.
pub(super) struct PendingIke {
    spi: u64,
    ni: Vec<u8>,
    share: KeyShare,
    /// The peer's simultaneous rekey of the same IKE SA, answered: the lowest nonce of
    /// its exchange and the IKE SA it made.
    collision: Option<(Vec<u8>, SaId)>,
}

fn fresh_spi(ctx: &mut Ctx<'_>) -> u64 {
    loop {
        let mut b = [0u8; 8];
        ctx.rng.fill(&mut b);
        let spi = u64::from_be_bytes(b);
        if spi != 0 {
            return spi;
        }
    }
}

/// Starts rekeying the IKE SA (same DH group as now).
pub(super) fn start(sa: &mut IkeSa, ctx: &mut Ctx<'_>) -> bool {
    if sa.state != State::Established || sa.outstanding.is_some() {
        return false;
    }
    let share = KeyShare::generate(sa.group, ctx.rng);
    let spi = fresh_spi(ctx);
    let ni = random_vec(ctx.rng, 32);
    let groups: Vec<DhGroup> = std::iter::once(sa.group)
        .chain(ctx.config.groups.iter().copied().filter(|g| *g != sa.group))
        .collect();
    let mut proposals = ike_proposals(&ctx.config.ike_ciphers, &groups);
    proposals
        .iter_mut()
        .for_each(|p| p.spi = spi.to_be_bytes().to_vec());
    let payloads = [
        Payload::Sa(proposals),
        Payload::Nonce(ni.clone()),
        Payload::Ke(Ke {
            group: sa.group.number(),
            data: share.public().to_vec(),
        }),
    ];
    let id = sa.next_request_id;
    let bytes = sa.seal(ctx, exchange::CREATE_CHILD_SA, false, id, &payloads);
    sa.next_request_id = id.wrapping_add(1);
    sa.send_request(ctx, id, bytes);
    sa.ike_rekey = Some(PendingIke {
        spi,
        ni,
        share,
        collision: None,
    });
    true
}

/// Whether a CREATE_CHILD_SA request proposes a new IKE SA.
pub(super) fn is_ike_rekey(inner: &[Payload]) -> bool {
    inner
        .iter()
        .any(|p| matches!(p, Payload::Sa(ps) if ps.iter().any(|p| p.protocol == protocol::IKE)))
}

fn sa_nonce_ke(inner: &[Payload]) -> Option<(&[Proposal], &[u8], &Ke)> {
    let mut found = (None, None, None);
    for p in inner {
        match p {
            Payload::Sa(s) => found.0 = Some(s.as_slice()),
            Payload::Nonce(n) => found.1 = Some(n.as_slice()),
            Payload::Ke(k) => found.2 = Some(k),
            _ => {}
        }
    }
    Some((found.0?, found.1?, found.2?))
}

/// The new IKE SA, which takes over the old one's Child SAs.
fn successor(
    old: &mut IkeSa,
    role: Role,
    spis: (u64, u64),
    (cipher, group): (Cipher, DhGroup),
    nonces: (&[u8], &[u8]),
    shared: &Secret,
    key_log: Option<&KeyLog>,
) -> Option<IkeSa> {
    let (ni, nr) = nonces;
    let sk_d = old.keys.as_ref()?.sk_d.clone();
    let mut sa = init::blank(role, spis.0, spis.1, old.local, old.remote, group);
    let seed = rekey_skeyseed(sk_d.expose(), shared.expose(), ni, nr);
    let keys = derive_ike_keys(cipher, &seed, ni, nr, spis.0, spis.1);
    log_keys(key_log, spis.0, spis.1, &seed, &keys);
    sa.keys = Some(keys);
    (sa.cipher, sa.ni, sa.nr) = (cipher, ni.to_vec(), nr.to_vec());
    sa.state = State::Established;
    sa.peer_hashes = old.peer_hashes.clone();
    sa.peer_id = old.peer_id.clone();
    (sa.nat_local, sa.nat_remote) = (old.nat_local, old.nat_remote);
    // Extensions agreed in IKE_SA_INIT (fragmentation) carry over to the new IKE SA.
    sa.fragmentation = old.fragmentation;
    sa.children = std::mem::take(&mut old.children);
    sa.tunnel = old.tunnel.clone();
    sa.ports = old.ports;
    Some(sa)
}

/// Responder: answers the peer's IKE SA rekey; the new SA goes to the endpoint.
pub(super) fn answer(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    inner: &[Payload],
) -> Result<Vec<Payload>, (u16, Vec<u8>)> {
    let (proposals, ni, ke) = sa_nonce_ke(inner).ok_or((notify::INVALID_SYNTAX, Vec::new()))?;
    let chosen = choose(
        proposals,
        protocol::IKE,
        &ctx.config.ike_ciphers,
        &ctx.config.groups,
    )
    .filter(|c| c.proposal.spi.len() == 8)
    .ok_or((notify::NO_PROPOSAL_CHOSEN, Vec::new()))?;
    let group = chosen
        .group
        .ok_or((notify::NO_PROPOSAL_CHOSEN, Vec::new()))?;
    if ke.group != group.number() {
        return Err((
            notify::INVALID_KE_PAYLOAD,
            group.number().to_be_bytes().to_vec(),
        ));
    }
    let share = KeyShare::generate(group, ctx.rng);
    let shared = share
        .agree(&ke.data)
        .map_err(|_| (notify::INVALID_SYNTAX, Vec::new()))?;
    let spi_i = u64::from_be_bytes(chosen.proposal.spi[..8].try_into().unwrap_or_default());
    let spi_r = fresh_spi(ctx);
    let nr = random_vec(ctx.rng, 32);
    let new = successor(
        sa,
        Role::Responder,
        (spi_i, spi_r),
        (chosen.cipher, group),
        (ni, &nr),
        &shared,
        ctx.config.key_log.as_ref(),
    )
    .ok_or((notify::TEMPORARY_FAILURE, Vec::new()))?;
    match sa.ike_rekey.as_mut() {
        Some(ours) => {
            // A collision: which new IKE SA survives is known once our own exchange ends.
            sa.children.clone_from(&new.children);
            ours.collision = Some((std::cmp::min(ni.to_vec(), nr.clone()), new.id()));
        }
        None => ctx.events.push(Event::IkeRekeyed {
            old: sa.id(),
            new: new.id(),
        }),
    }
    ctx.spawned.push(new);
    let mut proposal = chosen.proposal;
    proposal.spi = spi_r.to_be_bytes().to_vec();
    Ok(vec![
        Payload::Sa(vec![proposal]),
        Payload::Nonce(nr),
        Payload::Ke(Ke {
            group: group.number(),
            data: share.public().to_vec(),
        }),
    ])
}

/// Initiator: the response to our IKE SA rekey; then the old IKE SA is deleted.
pub(super) fn on_response(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    inner: &[Payload],
    pending: PendingIke,
) {
    let collision = pending.collision.clone();
    match accept(sa, ctx, inner, &pending) {
        Some(mut new) => match collision {
            Some((theirs, winner)) if std::cmp::min(&new.ni, &new.nr) < &theirs => {
                // Ours has the lowest nonce: it is redundant, and we delete it; the peer
                // deletes the old IKE SA (RFC 7296 §2.8.2).
                new.children.clear();
                info::delete_ike(&mut new, ctx);
                ctx.spawned.push(new);
                adopt_peers(sa, ctx, winner);
            }
            _ => {
                ctx.events.push(Event::IkeRekeyed {
                    old: sa.id(),
                    new: new.id(),
                });
                ctx.spawned.push(new);
                info::delete_ike(sa, ctx);
                ctx.redundant
                    .extend(collision.map(|(_, redundant)| redundant));
            }
        },
        None => {
            let notify = error_notify(inner).unwrap_or(notify::NO_PROPOSAL_CHOSEN);
            tracing::info!(sa = sa.id().0, notify, "IKE SA rekey refused");
            if let Some((_, theirs)) = collision {
                adopt_peers(sa, ctx, theirs);
            }
        }
    }
}

/// The peer's rekey of `sa`, answered in a collision, is the survivor: the Child SAs
/// live on in `new` (which holds them already); the peer deletes `sa`.
fn adopt_peers(sa: &mut IkeSa, ctx: &mut Ctx<'_>, new: SaId) {
    sa.children.clear();
    ctx.events.push(Event::IkeRekeyed { old: sa.id(), new });
}

/// The peer deletes `sa` while our rekey of it collided with the peer's (our response
/// is late or lost): the peer's rekey won, so its new IKE SA holds the Child SAs.
pub(super) fn on_deleted_in_collision(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    if let Some((_, theirs)) = sa.ike_rekey.take().and_then(|p| p.collision) {
        adopt_peers(sa, ctx, theirs);
    }
}

fn accept(sa: &mut IkeSa, ctx: &Ctx<'_>, inner: &[Payload], pending: &PendingIke) -> Option<IkeSa> {
    let (proposals, nr, ke) = sa_nonce_ke(inner)?;
    let group = pending.share.group();
    let chosen = Some(proposals)
        .filter(|ps| ps.len() == 1)
        .and_then(|ps| choose(ps, protocol::IKE, &ctx.config.ike_ciphers, &[group]))
        .filter(|c| c.proposal.spi.len() == 8 && ke.group == group.number())?;
    let shared = pending.share.agree(&ke.data).ok()?;
    let spi_r = u64::from_be_bytes(chosen.proposal.spi[..8].try_into().ok()?);
    successor(
        sa,
        Role::Initiator,
        (pending.spi, spi_r),
        (chosen.cipher, group),
        (&pending.ni, nr),
        &shared,
        ctx.config.key_log.as_ref(),
    )
}

/// Whether an IKE SA rekey of ours is waiting for its response.
pub(super) fn take_pending(sa: &mut IkeSa, _msg: &Message) -> Option<PendingIke> {
    sa.ike_rekey.take()
}
