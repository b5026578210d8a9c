//! One IKE SA: message IDs, window size 1, retransmission, cached responses, SK protection.

use std::net::SocketAddr;
use std::time::Instant;

use tracing::{debug, info};

use super::endpoint::Ctx;
use super::fragment::{self, Reassembly};
use super::{ike_auth, info, init, rekey, Event, FailReason, SaId, Transmit};
use crate::codec::{exchange, flags, notify, payload_type, Header, Id, Message, Notify, Payload};
use crate::crypto::{open_sk, Cipher, DhGroup, IkeKeys, KeyShare, SkError};

/// Which end of the IKE SA we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    Initiator,
    Responder,
}

/// Where the SA is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum State {
    /// Initiator: IKE_SA_INIT request sent.
    InitSent,
    /// Initiator: IKE_AUTH request sent.
    AuthSent,
    /// Responder: IKE_SA_INIT answered, waiting for IKE_AUTH.
    InitDone,
    /// Authenticated.
    Established,
    /// We sent a Delete of the IKE SA and wait for the response.
    Deleting,
    /// Failed or deleted; kept until `deadline` to answer retransmissions.
    Dead,
}

/// A request waiting for its response.
pub(super) struct Outstanding {
    pub(super) id: u32,
    /// Its datagrams: one, or its fragments, all sent again on each retransmission.
    pub(super) bytes: Vec<Vec<u8>>,
    pub(super) tries: u32,
    pub(super) next_at: Instant,
}

/// The state of one IKE SA.
pub(super) struct IkeSa {
    pub(super) role: Role,
    pub(super) state: State,
    pub(super) spi_i: u64,
    pub(super) spi_r: u64,
    pub(super) local: SocketAddr,
    pub(super) remote: SocketAddr,
    pub(super) cipher: Cipher,
    pub(super) key_share: Option<KeyShare>,
    pub(super) group: DhGroup,
    pub(super) ni: Vec<u8>,
    pub(super) nr: Vec<u8>,
    pub(super) keys: Option<IkeKeys>,
    pub(super) init_request: Vec<u8>,
    pub(super) init_response: Vec<u8>,
    pub(super) peer_hashes: Vec<u16>,
    pub(super) cookie: Option<Vec<u8>>,
    pub(super) retries: u8,
    pub(super) next_request_id: u32,
    pub(super) expected_request_id: u32,
    pub(super) last_response: Option<(u32, Vec<Vec<u8>>)>,
    pub(super) outstanding: Option<Outstanding>,
    pub(super) deadline: Option<Instant>,
    pub(super) remote_id: Option<Id>,
    pub(super) child_spi_in: u32,
    /// A NAT rewrites our address (or we pretend one does: forced encapsulation).
    pub(super) nat_local: bool,
    /// A NAT rewrites the peer's address.
    pub(super) nat_remote: bool,
    /// (inbound, outbound) SPIs of our Child SAs (two while one is being rekeyed).
    pub(super) children: Vec<(u32, u32)>,
    /// The Child SAs' tunnel selectors; `None`: transport mode between the two hosts.
    /// Requested by the initiator, then what was agreed; rekeys keep it.
    pub(super) tunnel: Option<super::Tunnel>,
    /// The protocol and ports a transport-mode Child SA is narrowed to; `None`: all.
    pub(super) ports: Option<super::Ports>,
    /// Our CREATE_CHILD_SA rekey request in flight.
    pub(super) rekey: Option<super::rekey::Pending>,
    /// The peer's authenticated identity.
    pub(super) peer_id: Option<Id>,
    /// Send INITIAL_CONTACT in IKE_AUTH (we hold no other IKE SA with the peer).
    pub(super) initial_contact: bool,
    /// Our IKE SA rekey request in flight.
    pub(super) ike_rekey: Option<super::ike_rekey::PendingIke>,
    /// (our address, peer's address) of the request being answered: responses go back
    /// the way the request came (RFC 7296 §2.11), e.g. on port 4500 after a float.
    pub(super) reply_path: Option<(SocketAddr, SocketAddr)>,
    /// Both ends announced IKEV2_FRAGMENTATION_SUPPORTED (RFC 7383 §2.3).
    pub(super) fragmentation: bool,
    /// The peer's fragmented request ([0]) and response ([1]) being reassembled.
    pub(super) fragments: [Option<Reassembly>; 2],
    /// The inner payloads of the message just reassembled, for [`IkeSa::open`].
    pub(super) reassembled: Option<Vec<Payload>>,
}

impl IkeSa {
    /// Our SPI, which names the SA.
    pub(super) fn id(&self) -> SaId {
        SaId(match self.role {
            Role::Initiator => self.spi_i,
            Role::Responder => self.spi_r,
        })
    }

    /// Once IKE_AUTH is through, drops what only it needed: both IKE_SA_INIT messages and
    /// the nonces (signed octets, RFC 7296 §2.15; the first Child SA's KEYMAT, §2.17),
    /// ~650 bytes per IKE SA. Rekeys bring their own nonces (§2.18), and a retransmitted
    /// IKE_AUTH request is answered from `last_response`.
    fn forget_handshake(&mut self) {
        if self.state == State::Established {
            for v in [
                &mut self.init_request,
                &mut self.init_response,
                &mut self.ni,
                &mut self.nr,
            ] {
                *v = Vec::new();
            }
            self.key_share = None;
            self.cookie = None;
        }
    }

    /// A header for a message of ours.
    pub(super) fn header(&self, exchange: u8, response: bool, message_id: u32) -> Header {
        let mut f = if response { flags::RESPONSE } else { 0 };
        if self.role == Role::Initiator {
            f |= flags::INITIATOR;
        }
        Header {
            spi_i: self.spi_i,
            spi_r: self.spi_r,
            exchange,
            flags: f,
            message_id,
        }
    }

    /// An encrypted message of ours carrying `payloads`: its datagrams (SKF fragments if
    /// fragmentation was negotiated and it would exceed the configured size).
    pub(super) fn seal(
        &self,
        ctx: &mut Ctx<'_>,
        exchange: u8,
        response: bool,
        id: u32,
        payloads: &[Payload],
    ) -> Vec<Vec<u8>> {
        let (first, inner) = crate::codec::encode_payloads(payloads);
        let Some((e, a)) = self.keys_of(self.role) else {
            return Vec::new();
        };
        let header = self.header(exchange, response, id);
        let (from, to) = match (response, self.reply_path) {
            (true, Some(path)) => path,
            _ => (self.local, self.remote),
        };
        let size = ctx.config.fragmentation.size;
        let limit = self
            .fragmentation
            .then(|| fragment::message_limit(size, from, to));
        let keys = (self.cipher, e, a);
        fragment::seal_message(keys, &header, (first, &inner), limit, ctx.rng)
    }

    /// SK_e and SK_a of the messages that `sender` sends.
    pub(super) fn keys_of(&self, sender: Role) -> Option<(&[u8], &[u8])> {
        let k = self.keys.as_ref()?;
        let (e, a) = match sender {
            Role::Initiator => (&k.sk_ei, &k.sk_ai),
            Role::Responder => (&k.sk_er, &k.sk_ar),
        };
        Some((e.expose(), a.expose()))
    }

    /// The inner payloads of a peer's encrypted message (or of the fragmented one just
    /// reassembled).
    pub(super) fn open(&self, datagram: &[u8], msg: &Message) -> Result<Vec<Payload>, SkError> {
        if let Some(payloads) = &self.reassembled {
            return Ok(payloads.clone());
        }
        let peer = match self.role {
            Role::Initiator => Role::Responder,
            Role::Responder => Role::Initiator,
        };
        let (e, a) = self.keys_of(peer).ok_or(SkError::Missing)?;
        if msg.payloads.len() != 1
            || msg.payloads.first().map(Payload::type_number) != Some(payload_type::SK)
        {
            return Err(SkError::Missing);
        }
        open_sk(self.cipher, e, a, datagram, msg)
    }

    /// Sends request `id` (its datagrams) and arms its retransmission.
    pub(super) fn send_request(&mut self, ctx: &mut Ctx<'_>, id: u32, bytes: Vec<Vec<u8>>) {
        self.transmit(ctx, bytes.clone());
        let next_at = ctx.now + ctx.config.retransmit.initial;
        self.outstanding = Some(Outstanding {
            id,
            bytes,
            tries: 1,
            next_at,
        });
    }

    /// Sends the response to request `id` and keeps it for retransmitted requests.
    pub(super) fn send_response(&mut self, ctx: &mut Ctx<'_>, id: u32, bytes: Vec<Vec<u8>>) {
        self.transmit_response(ctx, bytes.clone());
        self.last_response = Some((id, bytes));
        self.expected_request_id = id.wrapping_add(1);
    }

    fn transmit(&self, ctx: &mut Ctx<'_>, datagrams: Vec<Vec<u8>>) {
        for payload in datagrams {
            ctx.out.push_back(Transmit {
                from: self.local,
                to: self.remote,
                payload,
            });
        }
    }

    fn transmit_response(&self, ctx: &mut Ctx<'_>, datagrams: Vec<Vec<u8>>) {
        let (from, to) = self.reply_path.unwrap_or((self.local, self.remote));
        for payload in datagrams {
            ctx.out.push_back(Transmit { from, to, payload });
        }
    }

    /// Ends the SA: reports `reason` (if any) and keeps it a while for retransmissions.
    pub(super) fn fail(&mut self, ctx: &mut Ctx<'_>, reason: Option<FailReason>) {
        if let Some(reason) = reason {
            info!(sa = self.id().0, peer = %self.remote, %reason, "IKE SA failed");
            ctx.events.push(Event::Failed {
                sa: self.id(),
                reason,
            });
        }
        self.state = State::Dead;
        self.outstanding = None;
        self.deadline = Some(ctx.now + ctx.config.half_open_timeout);
    }

    /// Processes a message that demultiplexed to this SA.
    pub(super) fn handle(
        &mut self,
        ctx: &mut Ctx<'_>,
        path: (SocketAddr, SocketAddr),
        datagram: &[u8],
        msg: &Message,
    ) {
        let h = msg.header;
        let peer_is_initiator = self.role == Role::Responder;
        if h.from_initiator() != peer_is_initiator {
            return debug!(sa = self.id().0, "dropped message with wrong I flag");
        }
        if h.is_response() {
            if self.outstanding.as_ref().map(|o| o.id) != Some(h.message_id) {
                return debug!(
                    sa = self.id().0,
                    id = h.message_id,
                    "dropped unexpected response"
                );
            }
            if !fragment::reassemble(self, ctx, datagram, msg) {
                return;
            }
            match (self.state, h.exchange) {
                (State::InitSent, exchange::IKE_SA_INIT) => {
                    init::on_response(self, ctx, datagram, msg)
                }
                (State::AuthSent, exchange::IKE_AUTH) => {
                    ike_auth::on_response(self, ctx, datagram, msg);
                    self.forget_handshake();
                }
                (State::Established | State::Deleting, exchange::INFORMATIONAL) => {
                    info::on_response(self, ctx, datagram, msg)
                }
                (State::Established, exchange::CREATE_CHILD_SA) => {
                    rekey::on_response(self, ctx, datagram, msg)
                }
                _ => debug!(sa = self.id().0, "dropped response in wrong state"),
            }
            self.reassembled = None;
            return;
        }
        self.reply_path = Some(path);
        if let Some((id, bytes)) = &self.last_response {
            // RFC 7383 §2.6.1: a retransmitted fragmented request is answered once, on its
            // first fragment, not once per fragment.
            let first =
                !matches!(msg.payloads.last(), Some(Payload::Skf { number, .. }) if *number != 1);
            if *id == h.message_id {
                let again = bytes.clone();
                return if first {
                    self.transmit_response(ctx, again)
                } else {
                    debug!(sa = self.id().0, "ignored a retransmitted later fragment")
                };
            }
        }
        if h.message_id != self.expected_request_id {
            return debug!(
                sa = self.id().0,
                id = h.message_id,
                "dropped request with unexpected message ID"
            );
        }
        if !fragment::reassemble(self, ctx, datagram, msg) {
            return;
        }
        match (self.state, h.exchange) {
            (State::InitDone, exchange::IKE_AUTH) => {
                ike_auth::on_request(self, ctx, datagram, msg);
                self.forget_handshake();
            }
            (State::Established | State::Deleting, exchange::INFORMATIONAL) => {
                info::on_request(self, ctx, datagram, msg)
            }
            (State::Established, exchange::CREATE_CHILD_SA) => {
                rekey::on_request(self, ctx, datagram, msg)
            }
            _ => debug!(
                sa = self.id().0,
                exchange = h.exchange,
                "dropped request in wrong state"
            ),
        }
        self.reassembled = None;
    }

    /// Retransmits or gives up when due; expires half-open SAs.
    pub(super) fn on_timeout(&mut self, ctx: &mut Ctx<'_>) {
        let sa = self.id().0;
        if let Some(o) = &mut self.outstanding {
            if ctx.now >= o.next_at {
                if o.tries >= ctx.config.retransmit.max_tries {
                    if self.state == State::Deleting {
                        ctx.events.push(Event::Deleted { sa: self.id() });
                        return self.fail(ctx, None);
                    }
                    return self.fail(ctx, Some(FailReason::Timeout));
                }
                o.tries += 1;
                let backoff = ctx.config.retransmit.initial * 2u32.saturating_pow(o.tries - 1);
                o.next_at = ctx.now + backoff;
                let bytes = o.bytes.clone();
                debug!(sa, tries = o.tries, "retransmitting");
                self.transmit(ctx, bytes);
            }
        }
        if self.state == State::InitDone && self.deadline.is_some_and(|d| ctx.now >= d) {
            self.fail(ctx, Some(FailReason::Timeout));
        }
    }

    /// When this SA next needs [`IkeSa::on_timeout`].
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        let retransmit = self.outstanding.as_ref().map(|o| o.next_at);
        [retransmit, self.deadline].into_iter().flatten().min()
    }

    /// Whether this SA is established (or being deleted) with peer address `ip`.
    pub(super) fn is_up_with(&self, ip: std::net::IpAddr) -> bool {
        matches!(self.state, State::Established | State::Deleting) && self.remote.ip() == ip
    }

    /// Whether this SA is with peer address `ip` and not dead: being negotiated (either
    /// role), established or being deleted.
    pub(super) fn is_live_with(&self, ip: std::net::IpAddr) -> bool {
        self.state != State::Dead && self.remote.ip() == ip
    }

    /// Forgets this SA without telling the peer (it announced INITIAL_CONTACT).
    /// Gives up while IKE_SA_INIT is unanswered (see [`super::Endpoint::abandon`]).
    pub(super) fn abandon(&mut self, ctx: &mut Ctx<'_>) -> bool {
        if self.state != State::InitSent {
            return false;
        }
        self.fail(ctx, Some(FailReason::Timeout));
        true
    }

    pub(super) fn drop_silently(&mut self, ctx: &mut Ctx<'_>) {
        ctx.events.push(Event::Deleted { sa: self.id() });
        self.children.clear();
        self.fail(ctx, None);
    }

    /// Whether this is a responder SA still waiting for IKE_AUTH.
    pub(super) fn is_half_open(&self) -> bool {
        self.state == State::InitDone
    }

    /// Whether the endpoint may forget this SA.
    pub(super) fn is_removable(&self, now: Instant) -> bool {
        self.state == State::Dead && self.deadline.is_some_and(|d| now >= d)
    }
}

/// An error notify sent in an unencrypted IKE_SA_INIT response (no state kept).
pub(super) fn init_error(spi_i: u64, notify_type: u16, data: Vec<u8>) -> Vec<u8> {
    let header = Header {
        spi_i,
        spi_r: 0,
        exchange: exchange::IKE_SA_INIT,
        flags: flags::RESPONSE,
        message_id: 0,
    };
    Message {
        header,
        payloads: vec![Payload::Notify(Notify::new(notify_type, data))],
    }
    .encode()
}

/// The first error notify (type below 16384) among `payloads`.
pub(super) fn error_notify(payloads: &[Payload]) -> Option<u16> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type < notify::FIRST_STATUS => Some(n.notify_type),
        _ => None,
    })
}

/// The data of every notify of `notify_type`.
pub(super) fn find_notifies(payloads: &[Payload], notify_type: u16) -> impl Iterator<Item = &[u8]> {
    payloads.iter().filter_map(move |p| match p {
        Payload::Notify(n) if n.notify_type == notify_type => Some(n.data.as_slice()),
        _ => None,
    })
}

/// The data of the first notify of `notify_type`.
pub(super) fn find_notify(payloads: &[Payload], notify_type: u16) -> Option<&[u8]> {
    payloads.iter().find_map(|p| match p {
        Payload::Notify(n) if n.notify_type == notify_type => Some(n.data.as_slice()),
        _ => None,
    })
}
