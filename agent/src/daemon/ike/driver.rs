//! [`IkeDriver`]: one host's IKEv2 keying on real sockets. It reads datagrams, feeds
//! [`Keying`], sends what keying wants sent (and NAT keepalives), and reports the
//! negotiated SAs whenever they change, for the reconciler to merge into the desired set.
//! Time comes in as arguments (std `Instant`, as the ike crate takes); nothing here
//! writes to the kernel.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use super::crls::{refuse_rollback, CrlTracker};
use super::view::{self, IkeView};
use crate::ike_setup::IkeSetup;
use crate::keepalive::{KeepaliveSchedule, NatPath};
use crate::kernel::ike_sockets::{Datagram, IkePorts, IkeSockets};
use crate::keying::{Acquire, Admission, Keying, Settings, StaticSpis};
use crate::model::{DesiredSa, SaDir, SaKey};

/// The negotiated SAs keying wants in the kernel: one set, shared by the driver (to see
/// a change) and the reconciler (to install it).
pub type Negotiated = Arc<BTreeMap<SaKey, DesiredSa>>;

/// IKEv2 keying with its sockets and keepalive schedule.
pub struct IkeDriver {
    sockets: IkeSockets,
    keying: Keying,
    keepalives: KeepaliveSchedule,
    /// What was last reported as negotiated (a change is reported once).
    reported: Negotiated,
    /// A change not reported yet (a reload changed admission outside a handler).
    pending: bool,
    /// Datagrams are held in keying until [`IkeDriver::release`]: the negotiated SAs
    /// they depend on were reported and are not in the kernel yet.
    held: bool,
    own_not_after: Option<i64>,
    /// The CRLs in force: warnings, refused loads.
    pub crls: CrlTracker,
    /// Datagrams keying wanted sent that the socket refused (buffer full, no route).
    pub send_errors: u64,
}

impl IkeDriver {
    /// Open the IKE sockets (`v6`: IPv6 ones too) and start keying with `setup`.
    pub fn open(
        setup: IkeSetup,
        rng: Box<dyn ike::Rng + Send>,
        ports: IkePorts,
        v6: bool,
        now: Instant,
    ) -> io::Result<IkeDriver> {
        let sockets = IkeSockets::open(ports, v6)?;
        let own_not_after = setup
            .config
            .certificates
            .first()
            .and_then(|c| view::not_after(c));
        let keying = Keying::new(
            setup.config,
            rng,
            (now, SystemTime::now()),
            setup.settings,
            setup.admission,
        );
        Ok(IkeDriver {
            sockets,
            keying,
            keepalives: KeepaliveSchedule::default(),
            reported: Negotiated::default(),
            pending: false,
            held: false,
            own_not_after,
            crls: CrlTracker::default(),
            send_errors: 0,
        })
    }

    /// The next IKE message (cancel-safe).
    pub async fn recv(&self) -> io::Result<Datagram> {
        self.sockets.recv().await
    }

    /// The sockets (their bound ports, drop counters).
    pub fn sockets(&self) -> &IkeSockets {
        &self.sockets
    }

    /// Keying itself (status, counters).
    pub fn keying(&self) -> &Keying {
        &self.keying
    }

    /// A datagram received: handled, answers sent; the negotiated SAs if they changed.
    pub fn on_datagram(&mut self, now: Instant, d: &Datagram) -> Option<Negotiated> {
        self.keying.handle(now, d.from, d.to, &d.payload);
        self.settle(now)
    }

    /// Kernel acquires the policy keys over IKEv2: exchanges started (one per peer).
    pub fn on_acquires(&mut self, now: Instant, acquires: &[Acquire]) -> Option<Negotiated> {
        for a in acquires {
            self.keying.acquire(now, a);
        }
        self.settle(now)
    }

    /// Kernel lifetimes of negotiated SAs: their Child SAs are rekeyed now (a hard-expired
    /// SA also leaves the desired set).
    pub fn on_expires(&mut self, now: Instant, expires: &[(SaKey, bool)]) -> Option<Negotiated> {
        for (key, hard) in expires {
            self.keying.expire(now, *key, *hard);
        }
        if self.keying.poll_timeout().is_some_and(|t| t <= now) {
            self.keying.handle_timeout(now);
        }
        self.settle(now)
    }

    /// Packet counters of negotiated inbound SAs, as a reconcile read them: a peer whose
    /// ESP arrived needs no liveness check.
    pub fn note_packets(&mut self, now: Instant, packets: &BTreeMap<SaKey, u64>) {
        for (key, n) in packets {
            self.keying.note_packets(now, *key, *n);
        }
    }

    /// Timers due at `now`: retransmissions, rekeys, liveness checks, keepalives.
    pub fn on_timeout(&mut self, now: Instant) -> Option<Negotiated> {
        if self.keying.poll_timeout().is_some_and(|t| t <= now) {
            self.keying.handle_timeout(now);
        }
        for p in self.keepalives.due(now) {
            if let Err(e) = self.sockets.try_send_keepalive(p.local, p.remote) {
                self.send_errors += 1;
                tracing::debug!(peer = %p.remote, error = %e, "NAT keepalive not sent");
            }
        }
        self.settle(now)
    }

    /// The earliest timer: keying's or a keepalive's; `now`-ish when a change waits to
    /// be reported.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let pending = self.pending.then_some(now);
        [
            pending,
            self.keying.poll_timeout(),
            self.keepalives.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A policy reload: the new admission (peers no longer admitted are deleted), the
    /// static SPI slots, and the new credentials, authorities and timers (`config`: used
    /// from the next exchange on); the change is reported at the next
    /// [`IkeDriver::on_timeout`].
    pub fn reconfigure(
        &mut self,
        now: Instant,
        admission: Arc<dyn Admission>,
        spis: Option<Arc<StaticSpis>>,
        config: Option<(ike::sa::Config, Settings)>,
    ) {
        if let Some((mut config, settings)) = config {
            if let Err(e) = refuse_rollback(self.keying.verifier(), &config.verifier) {
                self.refused_authorities(e);
                config.verifier = self.keying.take_verifier();
            }
            self.own_not_after = config.certificates.first().and_then(|c| view::not_after(c));
            self.keying.set_config(now, config);
            self.keying.set_settings(settings);
        }
        self.keying.set_admission(now, admission);
        if let Some(spis) = spis {
            self.keying.set_spis(now, spis);
        }
        self.send_all(now);
        self.pending = true;
    }

    /// The authorities' CA and CRL files read again (one of them was replaced): a valid,
    /// not older set replaces the one in force, and established peers it now refuses are
    /// deleted; otherwise the set in force stays and the error is kept for status.
    pub fn set_authorities(
        &mut self,
        now: Instant,
        loaded: anyhow::Result<ike::cert::CertVerifier>,
    ) -> Option<Negotiated> {
        let checked = loaded
            .map_err(|e| format!("{e:#}"))
            .and_then(|v| refuse_rollback(self.keying.verifier(), &v).map(|()| v));
        match checked {
            Ok(v) => {
                self.crls.error = None;
                tracing::info!("authority files reloaded; established peers checked again");
                self.keying.set_verifier(now, v);
            }
            Err(e) => self.refused_authorities(e),
        }
        self.settle(now)
    }

    /// Authority files (or the new policy's IKE setup) that did not load: the ones in
    /// force stay; the error is kept for status and counted.
    pub fn refused_authorities(&mut self, e: String) {
        tracing::error!(error = %e, "authority files not loaded; the CA certificates and CRLs in force are kept");
        self.crls.error = Some(e);
        self.crls.errors += 1;
    }

    /// Logs CRLs that came within their warning margin or passed nextUpdate (`wall`:
    /// Unix seconds); when to look again.
    pub fn warn_crls(&mut self, wall: i64) -> Option<i64> {
        self.crls.warn(self.keying.verifier(), wall);
        self.crls.next_change(self.keying.verifier(), wall)
    }

    /// Deletes every IKE SA (daemon exit): Delete sent to each peer.
    pub fn shutdown(&mut self, now: Instant) {
        let pairs: Vec<_> = self.keying.peers().map(|(p, _)| *p).collect();
        for pair in pairs {
            self.keying.delete_peer(now, pair);
        }
        self.send_all(now);
    }

    /// What status shows, at `now` (which is `wall` Unix seconds).
    pub fn view(&self, now: Instant, wall: u64) -> IkeView {
        view::build(&self.keying, now, wall, self.own_not_after, &self.crls)
    }

    /// Send what keying queued; report the negotiated SAs if they changed, and keep the
    /// NAT paths of encapsulated SAs alive.
    ///
    /// When they changed, what keying queued stays queued until [`IkeDriver::release`]:
    /// a response or Delete lets the peer switch its outbound SA at once, so our new
    /// inbound SA must be in the kernel before it leaves (make-before-break; charon
    /// switches on the CREATE_CHILD_SA response and may send right after IKE_AUTH).
    fn settle(&mut self, now: Instant) -> Option<Negotiated> {
        let states = Negotiated::new(self.keying.desired_states());
        self.pending = false;
        if states == self.reported {
            if !self.held {
                self.send_all(now);
            }
            return None;
        }
        self.held = true;
        let (old, new) = (keepalive_paths(&self.reported), keepalive_paths(&states));
        for p in old.difference(&new) {
            self.keepalives.forget(p);
        }
        for p in new.difference(&old) {
            self.keepalives.keep(*p, now);
        }
        self.reported = states.clone();
        Some(states)
    }

    /// Send what was held for the reconcile that installs the reported SAs: called once
    /// that reconcile has run (applied or failed: a failed one is retried, and holding
    /// longer would only make the peer retransmit).
    pub fn release(&mut self, now: Instant) {
        self.held = false;
        self.send_all(now);
    }

    fn send_all(&mut self, now: Instant) {
        while let Some(t) = self.keying.poll_transmit(now) {
            match self.sockets.try_send(&t) {
                Ok(()) => self.keepalives.sent(
                    &NatPath {
                        local: t.from,
                        remote: t.to,
                    },
                    now,
                ),
                Err(e) => {
                    // Dropped like a lost datagram: the engine retransmits.
                    self.send_errors += 1;
                    tracing::debug!(to = %t.to, error = %e, "IKE datagram not sent");
                }
            }
        }
    }
}

/// The NAT-T paths of the encapsulated outbound SAs: our port to the peer's (RFC 3948
/// §2.3 keepalives keep exactly those mappings open).
pub fn keepalive_paths(states: &BTreeMap<SaKey, DesiredSa>) -> BTreeSet<NatPath> {
    (states.iter())
        .filter(|(_, s)| s.meta.dir == SaDir::Out)
        .filter_map(|(k, s)| {
            let e = s.spec.encap?;
            Some(NatPath {
                local: SocketAddr::new(s.spec.src, e.sport),
                remote: SocketAddr::new(k.dst, e.dport),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DesiredSa, Encap, SaKey};

    #[test]
    fn keepalives_follow_encapsulated_outbound_sas_only() {
        let d = crate::daemon::ike::seed_desired();
        let pick = |dir| {
            let (k, s) = d.states.iter().find(|(_, s)| s.meta.dir == dir).unwrap();
            (*k, s.clone())
        };
        let (ko, mut out) = pick(SaDir::Out);
        let (ki, mut inb) = pick(SaDir::In);
        let plain = Negotiated::new([(ko, out.clone()), (ki, inb.clone())].into());
        assert!(keepalive_paths(&plain).is_empty(), "no NAT-T, no keepalive");
        out.spec.encap = Some(Encap {
            sport: 4500,
            dport: 34567,
        });
        inb.spec.encap = Some(Encap {
            sport: 34567,
            dport: 4500,
        });
        let natt: BTreeMap<SaKey, DesiredSa> = [(ko, out.clone()), (ki, inb)].into();
        let want = NatPath {
            local: SocketAddr::new(out.spec.src, 4500),
            remote: SocketAddr::new(ko.dst, 34567),
        };
        assert_eq!(keepalive_paths(&natt), BTreeSet::from([want]));
    }
}
