//! The endpoint: demultiplexes datagrams to IKE SAs by SPI, creates responder SAs, and
//! collects what the SAs want sent.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use tracing::debug;

use super::ike_sa::IkeSa;
use super::{init, Config, Event, SaId, Transmit};
use crate::codec::{decode_message, exchange, Id};
use crate::crypto::Secret;
use crate::rng::{random_vec, Rng};

/// What an SA needs from its endpoint while it handles one input.
pub(super) struct Ctx<'a> {
    pub(super) config: &'a Config,
    pub(super) rng: &'a mut dyn Rng,
    pub(super) now: Instant,
    pub(super) wall: SystemTime,
    pub(super) out: &'a mut VecDeque<Transmit>,
    pub(super) events: &'a mut Vec<Event>,
    /// IKE SAs born of this input (IKE SA rekeys), for the endpoint to adopt.
    pub(super) spawned: Vec<IkeSa>,
    /// A peer announced INITIAL_CONTACT on this SA: its other SAs with us are stale.
    pub(super) initial_contact: Option<(SaId, Id)>,
}

/// All IKE SAs of one host, driven by the caller's datagrams and clock.
pub struct Endpoint {
    core: Core,
    sas: HashMap<u64, IkeSa>,
    by_initiator: HashMap<(SocketAddr, u64), u64>,
    refused_over_limit: u64,
}

/// What every SA shares: configuration, randomness, clock anchor, outgoing datagrams.
struct Core {
    config: Config,
    rng: Box<dyn Rng + Send>,
    clock: (Instant, SystemTime),
    outbox: VecDeque<Transmit>,
    cookie_secret: Secret,
}

impl Core {
    /// The context for handling one input at `now`, and the cookie secret.
    fn ctx<'a>(&'a mut self, now: Instant, events: &'a mut Vec<Event>) -> (Ctx<'a>, &'a Secret) {
        let wall = self.clock.1 + now.saturating_duration_since(self.clock.0);
        let ctx = Ctx {
            config: &self.config,
            rng: self.rng.as_mut(),
            now,
            wall,
            out: &mut self.outbox,
            events,
            spawned: Vec::new(),
            initial_contact: None,
        };
        (ctx, &self.cookie_secret)
    }
}

impl Endpoint {
    /// An endpoint; `now` and `wall` tie the monotonic clock to wall time for certificates.
    pub fn new(
        config: Config,
        mut rng: Box<dyn Rng + Send>,
        now: Instant,
        wall: SystemTime,
    ) -> Endpoint {
        let cookie_secret = Secret::new(random_vec(rng.as_mut(), 32));
        Endpoint {
            core: Core {
                config,
                rng,
                clock: (now, wall),
                outbox: VecDeque::new(),
                cookie_secret,
            },
            sas: HashMap::new(),
            by_initiator: HashMap::new(),
            refused_over_limit: 0,
        }
    }

    /// The configuration, to change for exchanges started from now on (admission rule,
    /// SPI filter, timers after a policy reload); running exchanges keep what they agreed.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.core.config
    }

    /// Re-anchors wall time (after the system clock was set).
    pub fn set_wall_clock(&mut self, now: Instant, wall: SystemTime) {
        self.core.clock = (now, wall);
    }

    /// Starts an IKE SA with one Child SA towards `remote`; `remote_id` is required of the peer if given.
    pub fn initiate(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        remote_id: Option<Id>,
    ) -> SaId {
        let spi = self.fresh_spi();
        let mut events = Vec::new();
        let (mut ctx, _) = self.core.ctx(now, &mut events);
        let mut sa = init::start(&mut ctx, spi, local, remote, remote_id);
        sa.initial_contact = !self.sas.values().any(|other| other.is_up_with(remote.ip()));
        self.sas.insert(spi, sa);
        SaId(spi)
    }

    /// Processes one datagram received on `to` from `from`.
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddr,
        to: SocketAddr,
        datagram: &[u8],
    ) -> Vec<Event> {
        let msg = match decode_message(datagram) {
            Ok(m) => m,
            Err(e) => {
                debug!(%from, error = %e, "dropped malformed IKE message");
                return Vec::new();
            }
        };
        let h = msg.header;
        let new_request = h.exchange == exchange::IKE_SA_INIT && !h.is_response() && h.spi_r == 0;
        let ours = match (new_request, h.from_initiator()) {
            (true, _) => self.by_initiator.get(&(from, h.spi_i)).copied(),
            (false, true) => Some(h.spi_r),
            (false, false) => Some(h.spi_i),
        };
        if new_request && ours.is_none() && self.sas.len() >= self.core.config.max_ike_sas {
            self.refused_over_limit += 1;
            debug!(%from, limit = self.core.config.max_ike_sas, "IKE SA limit reached: dropped IKE_SA_INIT");
            return Vec::new();
        }
        let fresh = if new_request && ours.is_none() {
            Some(self.fresh_spi())
        } else {
            None
        };
        let mut events = Vec::new();
        let (mut ctx, cookie_secret) = self.core.ctx(now, &mut events);
        if let Some(spi) = fresh {
            let half_open = self.sas.values().filter(|sa| sa.is_half_open()).count();
            let config = ctx.config;
            let demand =
                config.require_cookie || config.cookie_threshold.is_some_and(|t| half_open >= t);
            let secret = demand.then_some(cookie_secret);
            if let Some(sa) = init::respond(&mut ctx, spi, (from, to), datagram, &msg, secret) {
                self.by_initiator.insert((from, h.spi_i), spi);
                self.sas.insert(spi, sa);
            }
        } else if let Some(sa) = ours.and_then(|spi| self.sas.get_mut(&spi)) {
            sa.handle(&mut ctx, (to, from), datagram, &msg);
        } else {
            debug!(%from, spi_i = h.spi_i, spi_r = h.spi_r, "IKE message for no known SA");
        }
        let spawned = std::mem::take(&mut ctx.spawned);
        if let Some((keep, id)) = ctx.initial_contact.take() {
            // RFC 7296 §2.4: the peer restarted; its older IKE SAs with us are gone.
            for sa in self.sas.values_mut() {
                if sa.id() != keep && sa.is_up_with(from.ip()) && sa.peer_id.as_ref() == Some(&id) {
                    sa.drop_silently(&mut ctx);
                }
            }
        }
        self.adopt(spawned);
        events
    }

    /// Runs due timers: retransmissions, give-ups, expiry of half-open and dead SAs.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let (mut ctx, _) = self.core.ctx(now, &mut events);
        for sa in self.sas.values_mut() {
            sa.on_timeout(&mut ctx);
        }
        let gone: Vec<u64> = self
            .sas
            .iter()
            .filter(|(_, sa)| sa.is_removable(now))
            .map(|(spi, _)| *spi)
            .collect();
        for spi in gone {
            self.sas.remove(&spi);
            self.by_initiator.retain(|_, v| *v != spi);
        }
        events
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        self.core.outbox.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.values().filter_map(IkeSa::next_timeout).min()
    }

    /// Deletes IKE SA `sa` and its Child SA; [`Event::Deleted`] follows on the peer's
    /// response or after the last retransmission. `None` if not established or a request
    /// is outstanding (window size 1: try again after it completes).
    pub fn delete(&mut self, now: Instant, sa: SaId) -> Option<Vec<Event>> {
        self.with_sa(now, sa, super::info::delete_ike)
    }

    /// Gives up an exchange we started whose IKE_SA_INIT the peer has not answered yet:
    /// [`Event::Failed`] with [`super::FailReason::Timeout`], and nothing more is sent.
    /// `None` once the peer answered (the exchange then runs to its end) or for no such SA.
    pub fn abandon(&mut self, now: Instant, sa: SaId) -> Option<Vec<Event>> {
        self.with_sa(now, sa, IkeSa::abandon)
    }

    /// Deletes the Child SA of `sa` with inbound SPI `spi_in`: [`Event::ChildDeleted`] at
    /// once (remove the kernel SAs). `None` as for [`Endpoint::delete`], or no such Child SA.
    pub fn delete_child(&mut self, now: Instant, sa: SaId, spi_in: u32) -> Option<Vec<Event>> {
        self.with_sa(now, sa, |sa, ctx| {
            super::info::delete_child(sa, ctx, spi_in)
        })
    }

    /// Rekeys the Child SA of `sa` with inbound SPI `spi_in` (CREATE_CHILD_SA, with a KE for
    /// PFS unless `rekey_pfs` is off): [`Event::ChildSaReady`] with `rekeyed` follows, then
    /// [`Event::ChildDeleted`] for the old one. `None` as for [`Endpoint::delete_child`].
    pub fn rekey_child(&mut self, now: Instant, sa: SaId, spi_in: u32) -> Option<Vec<Event>> {
        self.with_sa(now, sa, |sa, ctx| super::rekey::start(sa, ctx, spi_in))
    }

    /// Sends a liveness check (empty INFORMATIONAL); no answer after all retransmissions
    /// gives [`Event::Failed`] with [`super::FailReason::Timeout`]. `None` as for [`Endpoint::delete`].
    pub fn check_liveness(&mut self, now: Instant, sa: SaId) -> Option<Vec<Event>> {
        self.with_sa(now, sa, |sa, ctx| super::info::send_request(sa, ctx, &[]))
    }

    fn with_sa(
        &mut self,
        now: Instant,
        id: SaId,
        f: impl FnOnce(&mut IkeSa, &mut Ctx<'_>) -> bool,
    ) -> Option<Vec<Event>> {
        let mut events = Vec::new();
        let (mut ctx, _) = self.core.ctx(now, &mut events);
        let sa = self.sas.get_mut(&id.0)?;
        let started = f(sa, &mut ctx);
        let spawned = std::mem::take(&mut ctx.spawned);
        self.adopt(spawned);
        started.then_some(events)
    }

    fn adopt(&mut self, spawned: Vec<IkeSa>) {
        for sa in spawned {
            self.sas.insert(sa.id().0, sa);
        }
    }

    /// Rekeys IKE SA `sa` (CREATE_CHILD_SA): [`Event::IkeRekeyed`] names the new one, which
    /// holds the Child SAs; the old one is deleted ([`Event::Deleted`], no Child SAs left).
    /// `None` as for [`Endpoint::delete`].
    pub fn rekey_ike(&mut self, now: Instant, sa: SaId) -> Option<Vec<Event>> {
        self.with_sa(now, sa, super::ike_rekey::start)
    }

    /// IKE_SA_INIT requests dropped because `max_ike_sas` was reached.
    pub fn refused_over_limit(&self) -> u64 {
        self.refused_over_limit
    }

    /// Number of IKE SAs held (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    fn fresh_spi(&mut self) -> u64 {
        loop {
            let mut b = [0u8; 8];
            self.core.rng.fill(&mut b);
            let spi = u64::from_be_bytes(b);
            if spi != 0 && !self.sas.contains_key(&spi) {
                return spi;
            }
        }
    }
}
