//! IKE_SA_INIT (RFC 7296 §1.2): proposals, KE and nonces, COOKIE and INVALID_KE_PAYLOAD.

use std::net::SocketAddr;

use tracing::debug;

use super::endpoint::Ctx;
use super::ike_sa::{error_notify, find_notify, init_error, IkeSa, Role, State};
use super::proposal::{choose, ike_proposals, Chosen};
use super::{ike_auth, log_keys, natd, FailReason, KeyLog, Transmit};
use crate::auth::{parse_hash_algorithms, signature_hash_algorithms};
use crate::codec::{exchange, notify, protocol, Cert, CertReq, Id, Ke, Message, Notify, Payload};
use crate::crypto::{derive_ike_keys, skeyseed, Cipher, DhGroup, KeyShare, Secret};
use crate::rng::random_vec;

const NONCE_LEN: usize = 32;
/// COOKIE and INVALID_KE_PAYLOAD retries before giving up.
const MAX_RETRIES: u8 = 3;

pub(super) fn blank(
    role: Role,
    spi_i: u64,
    spi_r: u64,
    local: SocketAddr,
    remote: SocketAddr,
    group: DhGroup,
) -> IkeSa {
    IkeSa {
        role,
        state: State::InitSent,
        spi_i,
        spi_r,
        local,
        remote,
        cipher: Cipher::AesGcm16 { bits: 128 },
        key_share: None,
        group,
        ni: Vec::new(),
        nr: Vec::new(),
        keys: None,
        init_request: Vec::new(),
        init_response: Vec::new(),
        peer_hashes: Vec::new(),
        cookie: None,
        retries: 0,
        next_request_id: 0,
        expected_request_id: 0,
        last_response: None,
        outstanding: None,
        deadline: None,
        remote_id: None,
        child_spi_in: 0,
        children: Vec::new(),
        tunnel: None,
        ports: None,
        rekey: None,
        ike_rekey: None,
        peer_id: None,
        initial_contact: false,
        nat_local: false,
        nat_remote: false,
        reply_path: None,
        fragmentation: false,
        fragments: [None, None],
        reassembled: None,
    }
}

/// Starts an IKE SA as initiator: sends IKE_SA_INIT.
pub(super) fn start(
    ctx: &mut Ctx<'_>,
    spi: u64,
    local: SocketAddr,
    remote: SocketAddr,
    remote_id: Option<Id>,
) -> IkeSa {
    let group = ctx
        .config
        .groups
        .first()
        .copied()
        .unwrap_or(DhGroup::Curve25519);
    let mut sa = blank(Role::Initiator, spi, 0, local, remote, group);
    sa.key_share = Some(KeyShare::generate(group, ctx.rng));
    sa.ni = random_vec(ctx.rng, NONCE_LEN);
    sa.remote_id = remote_id;
    sa.tunnel = (ctx.config.tunnel.as_ref()).and_then(|f| f(local.ip(), remote.ip()));
    sa.ports = (ctx.config.ports.as_ref()).and_then(|f| f(local.ip(), remote.ip()));
    send_init(&mut sa, ctx);
    sa
}

fn send_init(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let mut payloads = Vec::new();
    if let Some(cookie) = &sa.cookie {
        payloads.push(Payload::Notify(Notify::new(notify::COOKIE, cookie.clone())));
    }
    payloads.push(Payload::Sa(ike_proposals(
        &ctx.config.ike_ciphers,
        &ctx.config.groups,
    )));
    let public = sa
        .key_share
        .as_ref()
        .map(|k| k.public().to_vec())
        .unwrap_or_default();
    payloads.push(Payload::Ke(Ke {
        group: sa.group.number(),
        data: public,
    }));
    payloads.push(Payload::Nonce(sa.ni.clone()));
    payloads.extend(natd::payloads(sa, ctx, sa.local, sa.remote));
    if ctx.config.announce_signature_hashes {
        payloads.push(Payload::Notify(signature_hash_algorithms()));
    }
    if ctx.config.fragmentation.enabled {
        payloads.push(fragmentation_supported());
    }
    let bytes = Message {
        header: sa.header(exchange::IKE_SA_INIT, false, 0),
        payloads,
    }
    .encode();
    sa.init_request = bytes.clone();
    sa.state = State::InitSent;
    sa.send_request(ctx, 0, vec![bytes]);
}

/// Initiator: the IKE_SA_INIT response (or a COOKIE / INVALID_KE_PAYLOAD / error notify).
pub(super) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, datagram: &[u8], msg: &Message) {
    let payloads = &msg.payloads;
    if let Some(cookie) = find_notify(payloads, notify::COOKIE) {
        if sa.cookie.as_deref() == Some(cookie) {
            // The answer to a copy sent before the cookie (our retransmission, or a
            // duplicate on the path): the request with it is already out. Counting it as
            // a retry would give up on a busy responder that drops, then answers, copies.
            return;
        }
        if sa.retries >= MAX_RETRIES || cookie.is_empty() || cookie.len() > 64 {
            return sa.fail(ctx, Some(FailReason::Protocol("COOKIE retries exhausted")));
        }
        sa.retries += 1;
        sa.cookie = Some(cookie.to_vec());
        return send_init(sa, ctx);
    }
    if let Some(data) = find_notify(payloads, notify::INVALID_KE_PAYLOAD) {
        let wanted = <[u8; 2]>::try_from(data)
            .ok()
            .map(u16::from_be_bytes)
            .and_then(DhGroup::from_number);
        match wanted.filter(|g| ctx.config.groups.contains(g) && *g != sa.group) {
            Some(group) if sa.retries < MAX_RETRIES => {
                debug!(
                    sa = sa.id().0,
                    group = group.number(),
                    "peer wants another DH group"
                );
                sa.retries += 1;
                sa.group = group;
                sa.key_share = Some(KeyShare::generate(group, ctx.rng));
                return send_init(sa, ctx);
            }
            _ => return sa.fail(ctx, Some(FailReason::PeerError(notify::INVALID_KE_PAYLOAD))),
        }
    }
    if let Some(err) = error_notify(payloads) {
        let reason = match err {
            notify::NO_PROPOSAL_CHOSEN => FailReason::NoProposalChosen,
            other => FailReason::PeerError(other),
        };
        return sa.fail(ctx, Some(reason));
    }
    match accept_response(sa, ctx, msg) {
        Ok(()) => {
            sa.init_response = datagram.to_vec();
            sa.outstanding = None;
            if natd::present(payloads) {
                let (local, remote) = (sa.local, sa.remote);
                natd::detect(sa, ctx, payloads, sa.spi_r, local, remote);
                if sa.nat_local || sa.nat_remote {
                    natd::float(sa);
                }
            }
            ike_auth::send_request(sa, ctx);
        }
        Err(why) => sa.fail(ctx, Some(FailReason::Protocol(why))),
    }
}

fn accept_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, msg: &Message) -> Result<(), &'static str> {
    let (proposals, ke, nonce) =
        init_payloads(&msg.payloads).ok_or("IKE_SA_INIT response lacks SA, KE or Nr")?;
    if msg.header.spi_r == 0 || proposals.len() != 1 {
        return Err("IKE_SA_INIT response without SPIr or with several proposals");
    }
    let chosen = choose(
        proposals,
        protocol::IKE,
        &ctx.config.ike_ciphers,
        &ctx.config.groups,
    )
    .ok_or("responder chose a proposal we did not make")?;
    if chosen.group != Some(sa.group) || ke.group != sa.group.number() {
        return Err("responder's DH group differs from our KE");
    }
    let share = sa.key_share.take().ok_or("no key share")?;
    let shared = share
        .agree(&ke.data)
        .map_err(|_| "responder's KE is not a valid public value")?;
    sa.spi_r = msg.header.spi_r;
    sa.cipher = chosen.cipher;
    sa.nr = nonce.to_vec();
    sa.fragmentation = fragments_agreed(ctx, &msg.payloads);
    derive_keys(sa, &msg.payloads, &shared, ctx.config.key_log.as_ref());
    Ok(())
}

fn init_payloads(payloads: &[Payload]) -> Option<(&[crate::codec::Proposal], &Ke, &[u8])> {
    let sa = payloads.iter().find_map(|p| {
        if let Payload::Sa(s) = p {
            Some(s.as_slice())
        } else {
            None
        }
    })?;
    let ke = payloads.iter().find_map(|p| {
        if let Payload::Ke(k) = p {
            Some(k)
        } else {
            None
        }
    })?;
    let nonce = payloads.iter().find_map(|p| {
        if let Payload::Nonce(n) = p {
            Some(n.as_slice())
        } else {
            None
        }
    })?;
    Some((sa, ke, nonce))
}

/// What a responder accepted of an IKE_SA_INIT request.
struct Accepted<'m> {
    chosen: Chosen,
    group: DhGroup,
    ni: &'m [u8],
    ke: &'m [u8],
}

/// Checks an IKE_SA_INIT request; on refusal, the notify (type, data) to answer with.
fn accept_request<'m>(ctx: &Ctx<'_>, msg: &'m Message) -> Result<Accepted<'m>, (u16, Vec<u8>)> {
    if let Some(ptype) = msg.unsupported_critical() {
        return Err((notify::UNSUPPORTED_CRITICAL_PAYLOAD, vec![ptype]));
    }
    let (proposals, ke, ni) =
        init_payloads(&msg.payloads).ok_or((notify::INVALID_SYNTAX, Vec::new()))?;
    let no_proposal = (notify::NO_PROPOSAL_CHOSEN, Vec::new());
    let chosen = choose(
        proposals,
        protocol::IKE,
        &ctx.config.ike_ciphers,
        &ctx.config.groups,
    )
    .ok_or(no_proposal.clone())?;
    let group = chosen.group.ok_or(no_proposal)?;
    if ke.group != group.number() {
        return Err((
            notify::INVALID_KE_PAYLOAD,
            group.number().to_be_bytes().to_vec(),
        ));
    }
    Ok(Accepted {
        chosen,
        group,
        ni,
        ke: &ke.data,
    })
}

/// Responder: answers a new IKE_SA_INIT request (already screened for cookies and limits,
/// [`super::dos`]); returns the new SA, or `None` after a stateless error reply.
pub(super) fn respond(
    ctx: &mut Ctx<'_>,
    spi: u64,
    (from, to): (SocketAddr, SocketAddr),
    datagram: &[u8],
    msg: &Message,
) -> Option<IkeSa> {
    let refuse = |ctx: &mut Ctx<'_>, (notify_type, data): (u16, Vec<u8>)| {
        debug!(%from, notify_type, "refused IKE_SA_INIT");
        let payload = init_error(msg.header.spi_i, notify_type, data);
        ctx.out.push_back(Transmit {
            from: to,
            to: from,
            payload,
        });
        None
    };
    let accepted = match accept_request(ctx, msg) {
        Ok(a) => a,
        Err(refusal) => return refuse(ctx, refusal),
    };
    let share = KeyShare::generate(accepted.group, ctx.rng);
    let Ok(shared) = share.agree(accepted.ke) else {
        return refuse(ctx, (notify::INVALID_SYNTAX, Vec::new()));
    };
    let mut sa = blank(
        Role::Responder,
        msg.header.spi_i,
        spi,
        to,
        from,
        accepted.group,
    );
    sa.cipher = accepted.chosen.cipher;
    sa.ni = accepted.ni.to_vec();
    sa.nr = random_vec(ctx.rng, NONCE_LEN);
    sa.init_request = datagram.to_vec();
    derive_keys(&mut sa, &msg.payloads, &shared, ctx.config.key_log.as_ref());
    let mut payloads = vec![
        Payload::Sa(vec![accepted.chosen.proposal]),
        Payload::Ke(Ke {
            group: accepted.group.number(),
            data: share.public().to_vec(),
        }),
        Payload::Nonce(sa.nr.clone()),
    ];
    if natd::present(&msg.payloads) {
        natd::detect(&mut sa, ctx, &msg.payloads, 0, to, from);
        payloads.extend(natd::payloads(&sa, ctx, to, from));
    }
    let authorities = ctx.config.verifier.certreq_authorities();
    if !authorities.is_empty() {
        payloads.push(Payload::CertReq(CertReq {
            encoding: Cert::X509_SIGNATURE,
            authorities,
        }));
    }
    if ctx.config.announce_signature_hashes {
        payloads.push(Payload::Notify(signature_hash_algorithms()));
    }
    sa.fragmentation = fragments_agreed(ctx, &msg.payloads);
    if sa.fragmentation {
        payloads.push(fragmentation_supported());
    }
    let bytes = Message {
        header: sa.header(exchange::IKE_SA_INIT, true, 0),
        payloads,
    }
    .encode();
    sa.init_response = bytes.clone();
    sa.state = State::InitDone;
    sa.deadline = Some(ctx.now + ctx.config.half_open_timeout);
    sa.send_response(ctx, 0, vec![bytes]);
    Some(sa)
}

/// IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3: protocol 0, no SPI, no data).
fn fragmentation_supported() -> Payload {
    Payload::Notify(Notify::new(
        notify::IKEV2_FRAGMENTATION_SUPPORTED,
        Vec::new(),
    ))
}

/// Whether we fragment on this IKE SA: we allow it and the peer's IKE_SA_INIT announced it.
fn fragments_agreed(ctx: &Ctx<'_>, peer: &[Payload]) -> bool {
    ctx.config.fragmentation.enabled
        && find_notify(peer, notify::IKEV2_FRAGMENTATION_SUPPORTED).is_some()
}

/// Takes the peer's SIGNATURE_HASH_ALGORITHMS and derives the IKE SA keys (§2.14).
fn derive_keys(sa: &mut IkeSa, payloads: &[Payload], shared: &Secret, key_log: Option<&KeyLog>) {
    sa.peer_hashes = find_notify(payloads, notify::SIGNATURE_HASH_ALGORITHMS)
        .map(parse_hash_algorithms)
        .unwrap_or_default();
    let seed = skeyseed(&sa.ni, &sa.nr, shared.expose());
    let keys = derive_ike_keys(sa.cipher, &seed, &sa.ni, &sa.nr, sa.spi_i, sa.spi_r);
    log_keys(key_log, sa.spi_i, sa.spi_r, &seed, &keys);
    sa.keys = Some(keys);
}
