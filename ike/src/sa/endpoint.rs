//! The endpoint: demultiplexes datagrams to IKE SAs by SPI, creates responder SAs, and
//! collects what the SAs want sent.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use tracing::debug;

use super::dos::{DosCounters, Guard, Request, Screen};
use super::ike_sa::{init_error, IkeSa};
use super::{init, Config, Event, SaId, Transmit};
use crate::codec::{decode_message, exchange, notify, Id, Message};
use crate::rng::Rng;

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
    /// Limit hits inside SAs (reassembly bounds).
    pub(super) counters: &'a mut DosCounters,
    /// IKE SAs made redundant by a rekey collision, for the endpoint to delete.
    pub(super) redundant: Vec<SaId>,
    /// Another IKE SA with the same peer address is established or being negotiated:
    /// INITIAL_CONTACT would make the peer drop it (RFC 7296 §2.4).
    pub(super) peer_has_other_sa: bool,
}

/// All IKE SAs of one host, driven by the caller's datagrams and clock.
pub struct Endpoint {
    core: Core,
    // Boxed: an IkeSa is ~1 KB, and a table of values sits up to half empty after it
    // grows (bench/examples/keying_heap.rs: 2.4 KB per SA inline at 1,000 SAs).
    sas: HashMap<u64, Box<IkeSa>>,
    by_initiator: HashMap<(SocketAddr, u64), u64>,
}

/// What every SA shares: configuration, randomness, clock anchor, outgoing datagrams.
struct Core {
    config: Config,
    rng: Box<dyn Rng + Send>,
    clock: (Instant, SystemTime),
    outbox: VecDeque<Transmit>,
    guard: Guard,
}

impl Core {
    /// The context for handling one input at `now`.
    fn ctx<'a>(&'a mut self, now: Instant, events: &'a mut Vec<Event>) -> Ctx<'a> {
        let wall = self.clock.1 + now.saturating_duration_since(self.clock.0);
        Ctx {
            config: &self.config,
            rng: self.rng.as_mut(),
            now,
            wall,
            out: &mut self.outbox,
            events,
            spawned: Vec::new(),
            initial_contact: None,
            counters: &mut self.guard.counters,
            redundant: Vec::new(),
            peer_has_other_sa: false,
        }
    }

    /// Screens a new IKE_SA_INIT request; `true` lets it make state. A COOKIE reply is
    /// queued here, statelessly.
    fn screen(
        &mut self,
        now: Instant,
        (from, to): (SocketAddr, SocketAddr),
        msg: &Message,
        ike_sas: usize,
    ) -> bool {
        let request = Request {
            now,
            from: from.ip(),
            msg,
            ike_sas,
        };
        match (self.guard).screen(&self.config, self.rng.as_mut(), &request) {
            Screen::Admit => true,
            Screen::Drop => false,
            Screen::Cookie(cookie) => {
                let payload = init_error(msg.header.spi_i, notify::COOKIE, cookie);
                self.outbox.push_back(Transmit {
                    from: to,
                    to: from,
                    payload,
                });
                false
            }
        }
    }
}

/// Deletes the IKE SAs a rekey collision made redundant (RFC 7296 §2.8.2). Their
/// initiator deletes them too; deleting from both ends also ends one whose initiator
/// never learnt it lost (its response was lost after the old IKE SA was deleted).
fn delete_redundant(sas: &mut HashMap<u64, Box<IkeSa>>, ctx: &mut Ctx<'_>) {
    for id in std::mem::take(&mut ctx.redundant) {
        if let Some(sa) = sas.get_mut(&id.0) {
            sa.children.clear();
            super::info::delete_ike(sa, ctx);
        }
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
        let guard = Guard::new(rng.as_mut(), now);
        Endpoint {
            core: Core {
                config,
                rng,
                clock: (now, wall),
                outbox: VecDeque::new(),
                guard,
            },
            sas: HashMap::new(),
            by_initiator: HashMap::new(),
        }
    }

    /// The configuration, to change for exchanges started from now on (admission rule,
    /// SPI filter, timers after a policy reload); running exchanges keep what they agreed.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.core.config
    }

    /// The configuration in force (its verifier re-checks established peers).
    pub fn config(&self) -> &Config {
        &self.core.config
    }

    /// Wall time at `now`, on the endpoint's anchor (what certificates are checked at).
    pub fn wall_time(&self, now: Instant) -> SystemTime {
        self.core.clock.1 + now.saturating_duration_since(self.core.clock.0)
    }

    /// The instant at which wall time reaches `wall` (at the anchor if it is before).
    pub fn instant_at(&self, wall: SystemTime) -> Instant {
        let (at, anchor) = self.core.clock;
        at + wall.duration_since(anchor).unwrap_or_default()
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
        let mut ctx = self.core.ctx(now, &mut events);
        let mut sa = init::start(&mut ctx, spi, local, remote, remote_id);
        sa.initial_contact = !self
            .sas
            .values()
            .any(|other| other.is_live_with(remote.ip()));
        self.sas.insert(spi, Box::new(sa));
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
        let fresh = new_request && ours.is_none();
        // Stateless screening first: no SPI, SA or DH for a request that must show a cookie.
        if fresh && !self.core.screen(now, (from, to), &msg, self.sas.len()) {
            return Vec::new();
        }
        let fresh = fresh.then(|| self.fresh_spi());
        let mut events = Vec::new();
        let mut ctx = self.core.ctx(now, &mut events);
        if let Some(spi) = fresh {
            if let Some(sa) = init::respond(&mut ctx, spi, (from, to), datagram, &msg) {
                self.by_initiator.insert((from, h.spi_i), spi);
                self.sas.insert(spi, Box::new(sa));
            }
        } else if let Some(spi) = ours.filter(|spi| self.sas.contains_key(spi)) {
            // Decided when IKE_AUTH is sent, not when the exchange started: the peer may
            // have started one towards us meanwhile (both got traffic at once).
            ctx.peer_has_other_sa =
                (self.sas.iter()).any(|(other, sa)| *other != spi && sa.is_live_with(from.ip()));
            let sa = self.sas.get_mut(&spi).expect("checked");
            sa.handle(&mut ctx, (to, from), datagram, &msg);
        } else {
            debug!(%from, spi_i = h.spi_i, spi_r = h.spi_r, "IKE message for no known SA");
        }
        let spawned = std::mem::take(&mut ctx.spawned);
        delete_redundant(&mut self.sas, &mut ctx);
        if let Some((keep, id)) = ctx.initial_contact.take() {
            // RFC 7296 §2.4: the peer restarted; its older IKE SAs with us are gone.
            for sa in self.sas.values_mut() {
                if sa.id() != keep && sa.is_up_with(from.ip()) && sa.peer_id.as_ref() == Some(&id) {
                    sa.drop_silently(&mut ctx);
                }
            }
        }
        self.adopt(spawned);
        if let Some(spi) = fresh.or(ours) {
            self.track_half_open(spi);
        }
        events
    }

    /// Keeps the guard's half-open accounting in step with SA `spi`'s state.
    fn track_half_open(&mut self, spi: u64) {
        let source = (self.sas.get(&spi))
            .filter(|sa| sa.is_half_open())
            .map(|sa| sa.remote.ip());
        self.core.guard.set_half_open(spi, source);
    }

    /// Runs due timers: retransmissions, give-ups, expiry of half-open and dead SAs.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Event> {
        let mut events = Vec::new();
        let mut ctx = self.core.ctx(now, &mut events);
        let mut expired = Vec::new();
        for (spi, sa) in self.sas.iter_mut() {
            let half_open = sa.is_half_open();
            sa.on_timeout(&mut ctx);
            if half_open && !sa.is_half_open() {
                expired.push(*spi);
            }
        }
        self.core.guard.counters.half_open_expired += expired.len() as u64;
        for spi in expired {
            self.core.guard.set_half_open(spi, None);
        }
        let gone: HashSet<u64> = (self.sas.iter())
            .filter(|(_, sa)| sa.is_removable(now))
            .map(|(spi, _)| *spi)
            .collect();
        if !gone.is_empty() {
            self.sas.retain(|spi, _| !gone.contains(spi));
            // One pass for all: a flood's half-open SAs expire together.
            self.by_initiator.retain(|_, v| !gone.contains(v));
        }
        events
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self, _now: Instant) -> Option<Transmit> {
        self.core.outbox.pop_front()
    }

    /// When [`Endpoint::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.sas.values().filter_map(|sa| sa.next_timeout()).min()
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
        let mut ctx = self.core.ctx(now, &mut events);
        let sa = self.sas.get_mut(&id.0)?;
        let started = f(sa, &mut ctx);
        let spawned = std::mem::take(&mut ctx.spawned);
        delete_redundant(&mut self.sas, &mut ctx);
        self.adopt(spawned);
        started.then_some(events)
    }

    fn adopt(&mut self, spawned: Vec<IkeSa>) {
        for sa in spawned {
            self.sas.insert(sa.id().0, Box::new(sa));
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
        self.core.guard.counters.refused_ike_sa_limit
    }

    /// Counters of the responder's defences (cookies, limits hit, half-open expiries).
    pub fn dos_counters(&self) -> DosCounters {
        self.core.guard.counters
    }

    /// Half-open responder SAs held (IKE_SA_INIT answered, IKE_AUTH not done).
    pub fn half_open_count(&self) -> usize {
        self.core.guard.half_open()
    }

    /// Number of IKE SAs held (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.sas.len()
    }

    /// Each IKE SA held: its id and state (tests).
    #[cfg(test)]
    pub(super) fn states(&self) -> Vec<(SaId, super::ike_sa::State, usize, Option<u32>)> {
        let mut v: Vec<_> = (self.sas.values())
            .map(|sa| {
                let tries = sa.outstanding.as_ref().map(|o| o.tries);
                (sa.id(), sa.state, sa.children.len(), tries)
            })
            .collect();
        v.sort_by_key(|x| x.0);
        v
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
