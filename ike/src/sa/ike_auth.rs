//! IKE_AUTH (RFC 7296 §1.2, §2.15): identities, certificates, AUTH, and the first Child SA:
//! in transport mode with traffic selectors narrowed to the two hosts, or in tunnel mode
//! between the networks [`super::Config::tunnel`] names for the pair.

use tracing::info;

use super::child_ts::{
    answer_fits, mode_notify, narrowed, request_fits, selectors, transport_selectors,
};
use super::endpoint::Ctx;
use super::ike_sa::{error_notify, IkeSa, State};
use super::proposal::{choose, esp_proposals};
use super::{ChildSa, Event, FailReason, Mode, Tunnel};
use crate::auth::auth_octets;
use crate::auth::AuthError;
use crate::cert::{CertError, VerifiedPeer};
use crate::codec::{
    exchange, notify, protocol, Auth, Cert, CertReq, Id, Message, Notify, Payload, TrafficSelector,
};
use crate::crypto::{child_keymat, Cipher};

/// What an IKE_AUTH message carries, picked out of its inner payloads.
#[derive(Default)]
struct AuthPayloads<'a> {
    id: Option<&'a Id>,
    certs: Vec<&'a [u8]>,
    auth: Option<&'a Auth>,
    proposals: Option<&'a [crate::codec::Proposal]>,
    ts_i: Option<&'a [TrafficSelector]>,
    ts_r: Option<&'a [TrafficSelector]>,
    transport: bool,
    initial_contact: bool,
}

fn pick(payloads: &[Payload], from_initiator: bool) -> AuthPayloads<'_> {
    let mut p = AuthPayloads::default();
    for payload in payloads {
        match payload {
            Payload::IdI(id) if from_initiator => p.id = Some(id),
            Payload::IdR(id) if !from_initiator => p.id = Some(id),
            Payload::Cert(c) if c.encoding == Cert::X509_SIGNATURE => p.certs.push(&c.data),
            Payload::Auth(a) => p.auth = Some(a),
            Payload::Sa(s) => p.proposals = Some(s),
            Payload::TsI(t) => p.ts_i = Some(t),
            Payload::TsR(t) => p.ts_r = Some(t),
            Payload::Notify(n) if n.notify_type == notify::USE_TRANSPORT_MODE => p.transport = true,
            Payload::Notify(n) if n.notify_type == notify::INITIAL_CONTACT => {
                p.initial_contact = true
            }
            _ => {}
        }
    }
    p
}

/// Our ID, certificates, (CERTREQ) and AUTH over `signed_message | peer nonce | prf(SK_p, ID')`.
fn identity_payloads(sa: &IkeSa, ctx: &Ctx<'_>, certreq: bool) -> Result<Vec<Payload>, FailReason> {
    let config = ctx.config;
    let keys = sa.keys.as_ref().ok_or(FailReason::Protocol("no keys"))?;
    let (signed, peer_nonce, sk_p, id_payload) = match sa.role {
        super::ike_sa::Role::Initiator => (
            &sa.init_request,
            &sa.nr,
            &keys.sk_pi,
            Payload::IdI(config.id.clone()),
        ),
        super::ike_sa::Role::Responder => (
            &sa.init_response,
            &sa.ni,
            &keys.sk_pr,
            Payload::IdR(config.id.clone()),
        ),
    };
    let octets = auth_octets(signed, peer_nonce, sk_p, &config.id);
    let auth = config.key.sign(&octets, &sa.peer_hashes)?;
    let mut out = vec![id_payload];
    out.extend(config.certificates.iter().map(|c| {
        Payload::Cert(Cert {
            encoding: Cert::X509_SIGNATURE,
            data: c.clone(),
        })
    }));
    let authorities = config.verifier.certreq_authorities();
    if certreq && !authorities.is_empty() {
        out.push(Payload::CertReq(CertReq {
            encoding: Cert::X509_SIGNATURE,
            authorities,
        }));
    }
    out.push(Payload::Auth(auth));
    Ok(out)
}

/// Verifies the peer's certificate for its ID and its AUTH payload.
fn authenticate(
    sa: &IkeSa,
    ctx: &Ctx<'_>,
    p: &AuthPayloads<'_>,
) -> Result<(VerifiedPeer, Id), FailReason> {
    let id = p.id.ok_or(FailReason::Protocol("no ID payload"))?;
    let auth = p.auth.ok_or(FailReason::Protocol("no AUTH payload"))?;
    let (ee, chain) = signature_and_certificate(auth, &p.certs)?;
    let chain: Vec<Vec<u8>> = chain.iter().map(|c| c.to_vec()).collect();
    let peer = ctx.config.verifier.verify(ee, &chain, id, ctx.wall)?;
    let keys = sa.keys.as_ref().ok_or(FailReason::Protocol("no keys"))?;
    let (signed, our_nonce, sk_p) = match sa.role {
        super::ike_sa::Role::Initiator => (&sa.init_response, &sa.ni, &keys.sk_pr),
        super::ike_sa::Role::Responder => (&sa.init_request, &sa.nr, &keys.sk_pi),
    };
    peer.key
        .verify(auth, &auth_octets(signed, our_nonce, sk_p, id))?;
    let admitted = ctx.config.admit.as_ref().is_none_or(|admit| {
        admit(&super::Admission {
            authority: &peer.authority,
            subject: &peer.subject,
            peer_id: id,
            certificate: ee,
            local: sa.local,
            remote: sa.remote,
        })
    });
    if !admitted {
        return Err(FailReason::NotAdmitted(crate::cert::display_id(id)));
    }
    Ok((peer, id.clone()))
}

/// The peer's end-entity certificate and the rest of its chain, once its AUTH method is a
/// signature: a peer with a pre-shared key (method 2) or without a certificate fails
/// authentication, not the protocol (it is a credentials mismatch, and counted as one).
pub(super) fn signature_and_certificate<'a>(
    auth: &Auth,
    certs: &'a [&'a [u8]],
) -> Result<(&'a [u8], &'a [&'a [u8]]), FailReason> {
    use crate::auth::method;
    if ![method::RSA, method::ECDSA_P256, method::DIGITAL_SIGNATURE].contains(&auth.method) {
        return Err(AuthError::UnsupportedMethod(auth.method).into());
    }
    let (ee, chain) = certs
        .split_first()
        .ok_or(CertError::Malformed("no certificate".into()))?;
    Ok((*ee, chain))
}

fn authenticated(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    peer: VerifiedPeer,
    peer_id: Id,
    certificates: Vec<Vec<u8>>,
) {
    sa.peer_id = Some(peer_id.clone());
    info!(sa = sa.id().0, peer = %sa.remote, authority = %peer.authority, subject = %peer.subject, "IKE SA established");
    ctx.events.push(Event::PeerAuthenticated {
        sa: sa.id(),
        peer_id,
        authority: peer.authority,
        subject: peer.subject,
        not_after: peer.not_after,
        certificates,
    });
}

/// Initiator: sends IKE_AUTH with our identity and the Child SA request.
pub(super) fn send_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>) {
    let mut payloads = match identity_payloads(sa, ctx, true) {
        Ok(p) => p,
        Err(e) => return sa.fail(ctx, Some(e)),
    };
    if let Some(id) = &sa.remote_id {
        // IDr goes right before AUTH (RFC 7296 §1.2).
        let at = payloads.len() - 1;
        payloads.insert(at, Payload::IdR(id.clone()));
    }
    sa.child_spi_in = fresh_esp_spi(ctx);
    if sa.initial_contact && !ctx.peer_has_other_sa {
        // We hold no other IKE SA with this peer, nor negotiate one: it may drop any it
        // still has with us.
        payloads.push(Payload::Notify(Notify::new(
            notify::INITIAL_CONTACT,
            Vec::new(),
        )));
    }
    payloads.extend(mode_notify(sa));
    payloads.push(Payload::Sa(esp_proposals(
        &ctx.config.esp_ciphers,
        sa.child_spi_in,
        &[],
    )));
    payloads.extend(selectors(sa, true));
    let bytes = sa.seal(ctx, exchange::IKE_AUTH, false, 1, &payloads);
    sa.state = State::AuthSent;
    sa.next_request_id = 2;
    sa.send_request(ctx, 1, bytes);
}

/// Responder: checks the initiator, answers with our identity and the Child SA.
pub(super) fn on_request(sa: &mut IkeSa, ctx: &mut Ctx<'_>, datagram: &[u8], msg: &Message) {
    let Ok(inner) = sa.open(datagram, msg) else {
        return;
    }; // forged or corrupt: drop silently
    let id = msg.header.message_id;
    let p = pick(&inner, true);
    let (peer, peer_id) = match authenticate(sa, ctx, &p) {
        Ok(ok) => ok,
        Err(reason) => {
            let refusal = Payload::Notify(Notify::new(notify::AUTHENTICATION_FAILED, Vec::new()));
            let bytes = sa.seal(ctx, exchange::IKE_AUTH, true, id, &[refusal]);
            sa.send_response(ctx, id, bytes);
            return sa.fail(ctx, Some(reason));
        }
    };
    let mut payloads = match identity_payloads(sa, ctx, false) {
        Ok(p) => p,
        Err(e) => return sa.fail(ctx, Some(e)),
    };
    // An authenticated request may have moved (e.g. to port 4500): follow it.
    if let Some((local, remote)) = sa.reply_path {
        (sa.local, sa.remote) = (local, remote);
    }
    if p.initial_contact {
        ctx.initial_contact = Some((sa.id(), peer_id.clone()));
    }
    let certificates = p.certs.iter().map(|c| c.to_vec()).collect();
    authenticated(sa, ctx, peer, peer_id, certificates);
    let (child_payloads, ready) = answer_child(sa, ctx, &p);
    payloads.extend(child_payloads);
    let bytes = sa.seal(ctx, exchange::IKE_AUTH, true, id, &payloads);
    sa.send_response(ctx, id, bytes);
    sa.state = State::Established;
    sa.deadline = None;
    if let Some(child) = ready {
        ctx.events.push(Event::ChildSaReady(Box::new(child)));
    }
}

/// The Child SA part of our IKE_AUTH response, and the Child SA if we accepted one.
fn answer_child(
    sa: &mut IkeSa,
    ctx: &mut Ctx<'_>,
    p: &AuthPayloads<'_>,
) -> (Vec<Payload>, Option<ChildSa>) {
    let refuse = |notify_type| {
        (
            vec![Payload::Notify(Notify::new(notify_type, Vec::new()))],
            None,
        )
    };
    let chosen = choose(
        p.proposals.unwrap_or_default(),
        protocol::ESP,
        &ctx.config.esp_ciphers,
        &[],
    );
    sa.tunnel = (ctx.config.tunnel.as_ref()).and_then(|f| f(sa.local.ip(), sa.remote.ip()));
    sa.ports = (ctx.config.ports.as_ref()).and_then(|f| f(sa.local.ip(), sa.remote.ip()));
    let Some(chosen) = chosen.filter(|c| c.proposal.spi.len() == 4) else {
        return refuse(notify::NO_PROPOSAL_CHOSEN);
    };
    let (ts_i, ts_r) = (p.ts_i.unwrap_or_default(), p.ts_r.unwrap_or_default());
    if let Err(n) = request_fits(sa, p.transport, ts_i, ts_r) {
        return refuse(n);
    }
    let spi_out = u32::from_be_bytes(chosen.proposal.spi[..4].try_into().unwrap_or_default());
    let spi_in = fresh_esp_spi(ctx);
    let mut proposal = chosen.proposal;
    proposal.spi = spi_in.to_be_bytes().to_vec();
    sa.children.push((spi_in, spi_out));
    let mut payloads: Vec<Payload> = mode_notify(sa).into_iter().collect();
    payloads.push(Payload::Sa(vec![proposal]));
    payloads.extend(selectors(sa, false));
    (
        payloads,
        Some(child_sa(sa, chosen.cipher, (spi_in, spi_out), None)),
    )
}

/// Initiator: the IKE_AUTH response.
pub(super) fn on_response(sa: &mut IkeSa, ctx: &mut Ctx<'_>, datagram: &[u8], msg: &Message) {
    let Ok(inner) = sa.open(datagram, msg) else {
        return;
    };
    sa.outstanding = None;
    let p = pick(&inner, false);
    if p.auth.is_none() {
        let err = error_notify(&inner).unwrap_or(notify::AUTHENTICATION_FAILED);
        return sa.fail(ctx, Some(FailReason::PeerError(err)));
    }
    let (peer, peer_id) = match authenticate(sa, ctx, &p) {
        Ok(ok) => ok,
        Err(reason) => return sa.fail(ctx, Some(reason)),
    };
    if sa.remote_id.as_ref().is_some_and(|want| *want != peer_id) {
        let shown = crate::cert::display_id(&peer_id);
        return sa.fail(ctx, Some(FailReason::UnexpectedIdentity(shown)));
    }
    sa.state = State::Established;
    let certificates = p.certs.iter().map(|c| c.to_vec()).collect();
    authenticated(sa, ctx, peer, peer_id, certificates);
    if let Some(err) = error_notify(&inner) {
        return ctx.events.push(Event::ChildRefused {
            sa: sa.id(),
            notify: err,
        });
    }
    let chosen = p
        .proposals
        .filter(|ps| ps.len() == 1)
        .and_then(|ps| choose(ps, protocol::ESP, &ctx.config.esp_ciphers, &[]));
    let (ts_i, ts_r) = (p.ts_i.unwrap_or_default(), p.ts_r.unwrap_or_default());
    match chosen {
        Some(c) if answer_fits(sa, p.transport, ts_i, ts_r) && c.proposal.spi.len() == 4 => {
            if sa.tunnel.is_some() {
                // What the responder narrowed to is what the Child SA carries.
                sa.tunnel = Some(Tunnel {
                    local: ts_i.to_vec(),
                    remote: ts_r.to_vec(),
                });
            } else {
                sa.ports = narrowed(ts_i, ts_r).or(sa.ports);
            }
            let spi_out = u32::from_be_bytes(c.proposal.spi[..4].try_into().unwrap_or_default());
            let child = child_sa(sa, c.cipher, (sa.child_spi_in, spi_out), None);
            sa.children.push((sa.child_spi_in, spi_out));
            ctx.events.push(Event::ChildSaReady(Box::new(child)));
        }
        // The responder answered outside what we asked: we install nothing.
        _ => ctx.events.push(Event::ChildRefused {
            sa: sa.id(),
            notify: notify::NO_PROPOSAL_CHOSEN,
        }),
    }
}

/// The Child SA of the IKE_AUTH exchange: KEYMAT from the IKE SA's nonces.
fn child_sa(sa: &IkeSa, cipher: Cipher, spis: (u32, u32), rekeyed: Option<u32>) -> ChildSa {
    let we_initiated = sa.role == super::ike_sa::Role::Initiator;
    derive_child(
        sa,
        cipher,
        spis,
        (we_initiated, &sa.ni, &sa.nr, None),
        rekeyed,
    )
}

/// A Child SA with `spis` (in, out); `exchange` is (we initiated it, Ni, Nr, PFS secret).
pub(super) fn derive_child(
    sa: &IkeSa,
    cipher: Cipher,
    (spi_in, spi_out): (u32, u32),
    (we_initiated, ni, nr, pfs): (bool, &[u8], &[u8], Option<&[u8]>),
    rekeyed: Option<u32>,
) -> ChildSa {
    let sk_d = sa.keys.as_ref().map(|k| k.sk_d.clone()).unwrap_or_default();
    let keys = child_keymat(&sk_d, cipher, pfs, ni, nr);
    let (keys_in, keys_out) = match we_initiated {
        true => (keys.responder_to_initiator, keys.initiator_to_responder),
        false => (keys.initiator_to_responder, keys.responder_to_initiator),
    };
    let (local_ts, remote_ts, mode) = match &sa.tunnel {
        None => {
            let (us, them) = transport_selectors(sa);
            (us, them, Mode::Transport)
        }
        Some(t) => (t.local.clone(), t.remote.clone(), Mode::Tunnel),
    };
    ChildSa {
        sa: sa.id(),
        spi_in,
        spi_out,
        cipher,
        keys_in,
        keys_out,
        local_ts,
        remote_ts,
        mode,
        encap: sa.nat_local || sa.nat_remote,
        local: sa.local,
        remote: sa.remote,
        rekeyed,
    }
}

/// A random inbound ESP SPI outside the reserved range 0..=255 (RFC 4303 §2.1).
pub(super) fn fresh_esp_spi(ctx: &mut Ctx<'_>) -> u32 {
    let allowed = |spi: u32| ctx.config.esp_spi.as_ref().is_none_or(|f| f(spi));
    loop {
        let mut b = [0u8; 4];
        ctx.rng.fill(&mut b);
        let spi = u32::from_be_bytes(b);
        // SPIs 1-255 are reserved (RFC 4303 §2.1).
        if spi > 255 && allowed(spi) {
            return spi;
        }
    }
}
