//! A simulated network between two endpoints: loss, duplication, reordering, explicit time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{Endpoint, Event};
use crate::testnet::Channel;
pub(super) use crate::testnet::Faults;

/// Two endpoints, `a` at `addr_a` and `b` at `addr_b`, and what travels between them.
pub(super) struct Sim {
    pub(super) a: Endpoint,
    pub(super) b: Endpoint,
    pub(super) addr_a: SocketAddr,
    pub(super) addr_b: SocketAddr,
    pub(super) now: Instant,
    pub(super) events_a: Vec<Event>,
    pub(super) events_b: Vec<Event>,
    /// Every datagram delivered, in order: (time, sender is a, bytes).
    pub(super) delivered: Vec<(Instant, bool, Vec<u8>)>,
    /// Every datagram sent, in order: (time, sender is a).
    pub(super) sent: Vec<(Instant, bool)>,
    /// The path drops IPv4 datagrams longer than this (IKE message + 28 bytes of IP and UDP).
    pub(super) mtu: Option<usize>,
    channel: Channel,
}

impl Sim {
    pub(super) fn new(
        a: Endpoint,
        b: Endpoint,
        addr_a: SocketAddr,
        addr_b: SocketAddr,
        start: Instant,
        faults: Faults,
        seed: u64,
    ) -> Sim {
        Sim {
            a,
            b,
            addr_a,
            addr_b,
            now: start,
            events_a: Vec::new(),
            events_b: Vec::new(),
            delivered: Vec::new(),
            sent: Vec::new(),
            mtu: None,
            channel: Channel::new(faults, seed),
        }
    }

    /// Changes the network's behaviour from now on.
    pub(super) fn set_faults(&mut self, faults: Faults) {
        self.channel.set_faults(faults);
    }

    fn collect(&mut self) {
        let mut out = Vec::new();
        while let Some(t) = self.a.poll_transmit(self.now) {
            out.push((true, t));
        }
        while let Some(t) = self.b.poll_transmit(self.now) {
            out.push((false, t));
        }
        for (from_a, t) in out {
            self.sent.push((self.now, from_a));
            if self.mtu.is_some_and(|mtu| t.payload.len() + 28 > mtu) {
                continue;
            }
            self.channel.send(self.now, t);
        }
    }

    /// Runs until `done` holds or `limit` of simulated time has passed; returns whether `done`.
    pub(super) fn run_until(&mut self, limit: Duration, done: impl Fn(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        loop {
            if done(self) {
                return true;
            }
            self.collect();
            let next_packet = self.channel.next_arrival();
            let next = [next_packet, self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|n| *n <= end) else {
                return false;
            };
            self.now = self.now.max(next);
            self.deliver_due();
            if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
                let ev = self.a.handle_timeout(self.now);
                self.events_a.extend(ev);
            }
            if self.b.poll_timeout().is_some_and(|t| t <= self.now) {
                let ev = self.b.handle_timeout(self.now);
                self.events_b.extend(ev);
            }
        }
    }

    fn deliver_due(&mut self) {
        let now = self.now;
        for t in self.channel.arrivals(now) {
            let to_a = t.to.ip() == self.addr_a.ip();
            self.delivered.push((now, !to_a, t.payload.clone()));
            if to_a {
                let ev = self.a.handle(now, t.from, t.to, &t.payload);
                self.events_a.extend(ev);
            } else if t.to.ip() == self.addr_b.ip() {
                let ev = self.b.handle(now, t.from, t.to, &t.payload);
                self.events_b.extend(ev);
            }
        }
    }
}

/// The Child SA events in `events`.
pub(super) fn children(events: &[Event]) -> Vec<&super::ChildSa> {
    events
        .iter()
        .filter_map(|e| {
            if let Event::ChildSaReady(c) = e {
                Some(&**c)
            } else {
                None
            }
        })
        .collect()
}
