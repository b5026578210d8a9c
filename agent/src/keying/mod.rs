//! IKEv2 keying, without I/O: the glue between the sans-I/O `ike` engine and the agent's
//! desired XFRM set.
//!
//! A [`Keying`] owns one [`ike::sa::Endpoint`] and what it negotiated, per peer. The daemon
//! feeds it acquires, datagrams and timer ticks with the time (`Instant`, as the ike crate
//! does), sends what [`Keying::poll_transmit`] returns, wakes at [`Keying::poll_timeout`],
//! and merges [`Keying::desired_states`] into the compiled desired set, so the reconcile owns
//! negotiated SAs like static ones (diff, apply, verify, flush, status).
//!
//! Rekeying is make-before-break, in the order of the static path's rotation
//! (docs/design.md): the new inbound SA appears first; the outbound switches once the peer
//! surely has its inbound side, which is when the old Child SA is deleted (the rekey's
//! initiator deletes it as soon as the response arrives, so the responder switches when that
//! Delete reaches it); the old inbound SA stays for `grace`, for packets in flight. Only one
//! outbound SA per peer is desired at a time, so which one the kernel uses never depends on
//! installation order.

mod child;
mod duplicates;
mod events;
mod expiry;
#[cfg(test)]
mod expiry_tests;
mod fallback;
#[cfg(test)]
mod fallback_tests;
#[cfg(test)]
mod federation_tests;
#[cfg(test)]
mod kernel_tests;
mod liveness;
#[cfg(test)]
mod race_tests;
mod reconfigure;
mod spi;
mod status;
#[cfg(test)]
mod testnet;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tunnel_tests;
mod validity;
#[cfg(test)]
mod validity_tests;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use reconfigure::{admit_hook, own_not_after, ports_hook, tunnel_hook};

use ike::sa::{ChildSa, Config, Endpoint, SaId, Transmit, Tunnel};

pub use child::{algorithm, lifetime, net_selector, ports_fit, suite_name};
pub use expiry::Expiry;
pub use spi::StaticSpis;
pub use status::{Counters, FailureKind, PeerStatus};

use crate::model::{DesiredSa, Lifetime, SaDir, SaKey, Selector};

/// The IKE port (RFC 7296 §2): exchanges start there, from there.
pub const IKE_PORT: u16 = 500;

/// Timers of keying.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// A Child SA is rekeyed this long after it was made (by the IKE SA's initiator; the
    /// responder rekeys `rekey_after / 10` later if the initiator has not).
    pub rekey_after: Duration,
    /// Up to this much earlier, spread by SPI so that many peers do not rekey at once.
    pub rekey_jitter: Duration,
    /// An IKE SA is rekeyed this long after it was made (same roles as Child SAs).
    pub ike_rekey_after: Duration,
    /// An old inbound SA stays this long after the outbound switch (packets in flight).
    pub grace: Duration,
    /// A liveness check is sent after this long without hearing from the peer.
    pub dpd_idle: Duration,
    /// Wait before trying a rekey again that could not start (a request was running).
    pub retry: Duration,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            rekey_after: Duration::from_secs(3600),
            rekey_jitter: Duration::from_secs(360),
            ike_rekey_after: Duration::from_secs(4 * 3600),
            grace: Duration::from_secs(30),
            dpd_idle: Duration::from_secs(30),
            retry: Duration::from_secs(1),
        }
    }
}

/// How the SAs of one admitted pair are installed: what the rule keying it says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// The reqid of the rule's template (so the kernel's policy finds the SA).
    pub reqid: u32,
    /// Anti-replay window in packets.
    pub replay_window: u32,
    /// Kernel lifetimes: a safety net past the planned rekey ([`lifetime`]).
    pub lifetime: Lifetime,
    /// A tunnel-mode rule keys the pair (two gateways): the networks behind each. `None`:
    /// transport mode between the two hosts.
    pub tunnel: Option<Tunnel>,
    /// A `request` rule keys the pair (clear traffic is allowed): an exchange we start is
    /// given up when the peer has not answered within this time ([`fallback`]).
    pub fallback: Option<Duration>,
    /// A port rule alone admits the peer: the transport-mode Child SA (and so the kernel
    /// SAs' selectors) is narrowed to its protocol and ports. `None`: every protocol.
    pub ports: Option<ike::sa::Ports>,
}

impl Terms {
    /// Transport mode between the two hosts, every protocol, no fallback to clear: what
    /// a `require` rule between two hosts gives; other terms are set over it.
    pub fn transport(reqid: u32, replay_window: u32, lifetime: Lifetime) -> Terms {
        Terms {
            reqid,
            replay_window,
            lifetime,
            tunnel: None,
            fallback: None,
            ports: None,
        }
    }
}

/// Which peers keying admits: filled in by the daemon from the policy (rules with
/// `key-exchange = "ikev2"` and their authorities), replaced on reload.
pub trait Admission: Send + Sync {
    /// The terms for SAs between our `local` and the peer's `remote` address, if a rule
    /// keys that pair over IKEv2; `None` leaves the pair alone (acquires stay counted).
    fn terms(&self, local: IpAddr, remote: IpAddr) -> Option<Terms>;
    /// Whether an authenticated peer (certificate and AUTH checked) is admitted: its
    /// authority and identity against the rules covering its addresses.
    fn admit(&self, peer: &ike::sa::Admission<'_>) -> bool;
}

/// A kernel acquire: traffic from `local` to `remote` found a policy without an SA.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquire {
    pub local: IpAddr,
    pub remote: IpAddr,
    /// The selector of the packet that triggered it.
    pub sel: Selector,
    /// The acquire's sequence number: SAs added with it replace the larval state.
    pub seq: u32,
}

/// The two addresses of a keyed pair: ours, the peer's.
pub type Pair = (IpAddr, IpAddr);

/// One IKE SA with a peer.
#[derive(Debug)]
struct Ike {
    id: SaId,
    /// We started it (the acquire's side): we rekey first.
    initiator: bool,
    /// IKE_AUTH completed.
    up: bool,
    rekey_at: Option<Instant>,
    /// Last datagram from the peer's address (or traffic the daemon reported).
    last_heard: Instant,
    /// A liveness check is outstanding.
    probing: bool,
}

/// One negotiated Child SA.
#[derive(Debug)]
struct Child {
    sa: ChildSa,
    /// Increasing per peer: tells which Child SA is newer.
    generation: u64,
    rekey_at: Option<Instant>,
    /// The peer has our outbound's inbound side: the outbound may be used.
    out_ready: bool,
    /// The kernel hard-expired one of its SAs: none of them is installed again.
    expired: bool,
    /// Its inbound SA's packet counter when last read.
    packets_in: u64,
}

/// What keying holds for one peer address.
#[derive(Debug)]
struct Peer {
    terms: Terms,
    ikes: Vec<Ike>,
    children: Vec<Child>,
    /// Inbound SAs of replaced Child SAs, kept until the instant given.
    retiring: Vec<(ChildSa, u64, Instant)>,
    /// The inbound SPI of the Child SA whose outbound SA is in use.
    out: Option<u32>,
    acquire_seq: Option<u32>,
    status: PeerStatus,
    /// Its certificates as authenticated: checked again when the authorities change.
    credential: Option<validity::Credential>,
    generations: u64,
}

impl Peer {
    fn new(terms: Terms) -> Peer {
        Peer {
            terms,
            ikes: Vec::new(),
            children: Vec::new(),
            retiring: Vec::new(),
            out: None,
            acquire_seq: None,
            status: PeerStatus::default(),
            credential: None,
            generations: 0,
        }
    }

    fn name(&self, pair: &Pair) -> String {
        if self.status.identity.is_empty() {
            format!("ike:{}", pair.1)
        } else {
            format!("ike:{}", self.status.identity)
        }
    }
}

/// The IKEv2 keying of one host: one endpoint, the peers it keys, what they negotiated.
pub struct Keying {
    endpoint: Endpoint,
    settings: Settings,
    admission: Arc<dyn Admission>,
    /// Boxed: a `Peer` is several hundred bytes, and B-tree nodes hold 11 values each,
    /// a third empty on average.
    peers: BTreeMap<Pair, Box<Peer>>,
    by_sa: HashMap<SaId, Pair>,
    /// Authenticated peers whose Child SA has not come yet (responder side).
    authenticated: HashMap<SaId, (PeerStatus, validity::Credential)>,
    /// `request` peers we tried: when to give up, when to try again.
    fallbacks: BTreeMap<Pair, fallback::Fallback>,
    counters: Counters,
    /// Our certificate's notAfter (Unix seconds).
    own_not_after: Option<i64>,
    /// Our certificate's expiry was acted on (peers deleted, logged once).
    own_expiry_handled: bool,
}

impl Keying {
    /// Keying with `config` (our credentials and suites; its `admit` is replaced by
    /// `admission`); `now` and `wall` anchor certificate time as in [`Endpoint::new`].
    pub fn new(
        mut config: Config,
        rng: Box<dyn ike::Rng + Send>,
        (now, wall): (Instant, SystemTime),
        settings: Settings,
        admission: Arc<dyn Admission>,
    ) -> Keying {
        config.admit = Some(admit_hook(&admission));
        config.tunnel = Some(tunnel_hook(&admission));
        config.ports = Some(ports_hook(&admission));
        let own_not_after = own_not_after(&config);
        Keying {
            endpoint: Endpoint::new(config, rng, now, wall),
            settings,
            admission,
            peers: BTreeMap::new(),
            by_sa: HashMap::new(),
            authenticated: HashMap::new(),
            fallbacks: BTreeMap::new(),
            counters: Counters::default(),
            own_not_after,
            own_expiry_handled: false,
        }
    }

    /// A kernel acquire: starts an exchange with the peer if a rule keys the pair and none
    /// runs yet (one per peer); `false` if the acquire is not ours or was merged.
    pub fn acquire(&mut self, now: Instant, acquire: &Acquire) -> bool {
        let pair = (acquire.local, acquire.remote);
        if self.own_certificate_expired(now) {
            self.counters.refused_own_expired += 1;
            return false;
        }
        let Some(terms) = self.admission.terms(pair.0, pair.1) else {
            self.counters.acquires_not_admitted += 1;
            return false;
        };
        if self.peers.get(&pair).is_some_and(|p| !p.ikes.is_empty()) {
            self.counters.acquires_merged += 1;
            return false;
        }
        if self.fallback_acquire(now, pair, &terms) {
            self.counters.acquires_in_backoff += 1;
            return false;
        }
        let peer = (self.peers.entry(pair)).or_insert_with(|| Box::new(Peer::new(terms)));
        let sa = self.endpoint.initiate(
            now,
            SocketAddr::new(pair.0, IKE_PORT),
            SocketAddr::new(pair.1, IKE_PORT),
            None,
        );
        peer.acquire_seq = Some(acquire.seq);
        push_exact(&mut peer.ikes, Ike::new(sa, true, now));
        self.by_sa.insert(sa, pair);
        tracing::info!(local = %pair.0, peer = %pair.1, seq = acquire.seq, packet = %acquire.sel, "IKEv2 exchange started on acquire");
        true
    }

    /// A datagram received on `to` from `from` (the non-ESP marker already stripped).
    pub fn handle(&mut self, now: Instant, from: SocketAddr, to: SocketAddr, datagram: &[u8]) {
        if self.own_certificate_expired(now) {
            // Nothing of ours is valid to answer with: the peer times out.
            self.counters.refused_own_expired += 1;
            return;
        }
        self.note_traffic(now, (to.ip(), from.ip()));
        let events = self.endpoint.handle(now, from, to, datagram);
        self.on_events(now, events);
    }

    /// Traffic from the peer of `pair` seen elsewhere (ESP counters): no liveness check
    /// is needed while it flows.
    pub fn note_traffic(&mut self, now: Instant, pair: Pair) {
        if let Some(peer) = self.peers.get_mut(&pair) {
            for ike in &mut peer.ikes {
                ike.last_heard = now;
                ike.probing = false;
            }
        }
    }

    /// Runs what is due at `now`: retransmissions, rekeys, liveness checks, retirements.
    pub fn handle_timeout(&mut self, now: Instant) {
        let events = self.endpoint.handle_timeout(now);
        self.on_events(now, events);
        self.run_timers(now);
        self.fallback_timers(now);
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.endpoint.poll_transmit(now)
    }

    /// When [`Keying::handle_timeout`] must next run.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let own = self.peers.values().flat_map(|p| {
            let children = p.children.iter().filter_map(|c| c.rekey_at);
            let retiring = p.retiring.iter().map(|r| r.2);
            let ikes = p.ikes.iter().filter(|i| i.up).flat_map(|i| {
                let dpd = (!i.probing).then(|| i.last_heard + self.settings.dpd_idle);
                [i.rekey_at, dpd]
            });
            children.chain(retiring).chain(ikes.flatten())
        });
        (own.chain(self.expiry_deadline())
            .chain(self.fallback_timeout()))
        .chain(self.endpoint.poll_timeout())
        .min()
    }

    /// The ESP SAs keying wants in the kernel now: every live Child SA's inbound SA, the
    /// outbound SA in use per peer, and replaced inbound SAs within their grace.
    pub fn desired_states(&self) -> BTreeMap<SaKey, DesiredSa> {
        let mut out = BTreeMap::new();
        for (pair, peer) in &self.peers {
            let name = peer.name(pair);
            let mut put = |c: &ChildSa, generation, dir| {
                let (k, v) = child::state(c, dir, &peer.terms, &name, generation);
                out.insert(k, v);
            };
            for c in peer.children.iter().filter(|c| !c.expired) {
                put(&c.sa, c.generation, SaDir::In);
                if peer.out == Some(c.sa.spi_in) {
                    put(&c.sa, c.generation, SaDir::Out);
                }
            }
            for (c, generation, _) in &peer.retiring {
                put(c, *generation, SaDir::In);
            }
        }
        out
    }

    /// Deletes every IKE SA with the peer of `pair` (Delete sent) and its SAs at once.
    pub fn delete_peer(&mut self, now: Instant, pair: Pair) {
        let Some(peer) = self.peers.remove(&pair) else {
            return;
        };
        for ike in peer.ikes {
            // A running request (window 1) makes `delete` refuse: the SA then dies by
            // itself, and its events find no peer.
            let events = self.endpoint.delete(now, ike.id).unwrap_or_default();
            self.on_events(now, events);
        }
        tracing::info!(local = %pair.0, peer = %pair.1, "IKEv2 peer deleted");
    }

    /// The acquire sequence number to add the pair's first SAs with (replacing the
    /// kernel's larval state), if keying started on an acquire.
    pub fn acquire_seq(&self, pair: Pair) -> Option<u32> {
        self.peers.get(&pair).and_then(|p| p.acquire_seq)
    }

    /// Every keyed peer's record.
    pub fn peers(&self) -> impl Iterator<Item = (&Pair, &PeerStatus)> {
        self.peers.iter().map(|(k, p)| (k, &p.status))
    }

    /// Outcome counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// IKE SAs the endpoint holds (any state).
    pub fn ike_sa_count(&self) -> usize {
        self.endpoint.ike_sa_count()
    }

    /// Half-open responder IKE SAs held (IKE_SA_INIT answered, no IKE_AUTH yet).
    pub fn half_open_count(&self) -> usize {
        self.endpoint.half_open_count()
    }

    /// The responder's denial-of-service counters (cookies sent, limits hit).
    pub fn dos_counters(&self) -> ike::sa::DosCounters {
        self.endpoint.dos_counters()
    }
}

impl Ike {
    fn new(id: SaId, initiator: bool, now: Instant) -> Ike {
        Ike {
            id,
            initiator,
            up: false,
            rekey_at: None,
            last_heard: now,
            probing: false,
        }
    }
}

/// Pushes `item` growing `v` by one slot only: a peer holds one IKE SA and one Child SA
/// but for the moments of a rekey, and `push` would reserve four (~1 KB per peer).
fn push_exact<T>(v: &mut Vec<T>, item: T) {
    v.reserve_exact(1);
    v.push(item);
}
