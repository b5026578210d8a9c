//! IKEv2 as a source of the loop: datagrams on UDP 500/4500, keying's own timers and NAT
//! keepalives, and the acquires the XFRM source routes here. Whenever the negotiated SAs
//! change, they go to the reconciler and the turn reconciles ([`Cause::Keying`]).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Cx, Source};
use crate::daemon::ike::{IkeDriver, Negotiated, OsRng};
use crate::daemon::reconciler::{Cause, Reconciler};
use crate::ike_setup::IkeSetup;
use crate::kernel::ike_sockets::{Datagram, IkePorts};
use crate::keying::{Acquire, Admission, Terms};
use crate::model::SaKey;

/// The status view of keying is rebuilt at most this often (per datagram it would cost
/// a walk over every peer); a change of the negotiated SAs rebuilds it at once.
const VIEW_EVERY: Duration = Duration::from_secs(1);

/// The IKE sockets and keying.
pub(in crate::daemon) struct Ike {
    driver: IkeDriver,
    /// When the view was last rebuilt, and whether something happened since.
    view_at: Instant,
    view_stale: bool,
}

/// Admits nothing: keying under a policy that no longer uses IKEv2.
struct NoIke;

impl Admission for NoIke {
    fn terms(&self, _: std::net::IpAddr, _: std::net::IpAddr) -> Option<Terms> {
        None
    }
    fn admit(&self, _: &ike::sa::Admission<'_>) -> bool {
        false
    }
}

fn std_now() -> std::time::Instant {
    Instant::now().into_std()
}

impl Ike {
    /// Open the IKE sockets (IPv6 too when the host has IPv6 addresses in the policy) and
    /// tell the reconciler that IKE runs.
    pub(in crate::daemon) fn open(
        setup: IkeSetup,
        v6: bool,
        rec: &mut Reconciler,
    ) -> anyhow::Result<Ike> {
        let admission = setup.admission.clone();
        let mut driver =
            IkeDriver::open(setup, Box::new(OsRng), IkePorts::default(), v6, std_now())
                .map_err(|e| anyhow::anyhow!("opening the IKE sockets (UDP 500/4500): {e}"))?;
        driver.reconfigure(std_now(), admission.clone(), Some(rec.static_spis()), None);
        rec.start_ike(admission);
        rec.view.ike = Some(driver.view(std_now(), crate::clock::now().secs()));
        tracing::info!(ipv6 = v6, "IKEv2 running on UDP 500 and 4500");
        Ok(Ike {
            driver,
            view_at: Instant::now(),
            view_stale: false,
        })
    }

    /// Acquires the XFRM source routed here.
    pub(in crate::daemon) fn on_acquires(&mut self, acquires: &[Acquire], cx: &mut Cx<'_>) {
        if acquires.is_empty() {
            return;
        }
        let changed = self.driver.on_acquires(std_now(), acquires);
        self.report(changed, cx);
    }

    /// Kernel lifetimes of negotiated SAs the XFRM source routed here.
    pub(in crate::daemon) fn on_expires(&mut self, expires: &[(SaKey, bool)], cx: &mut Cx<'_>) {
        if expires.is_empty() {
            return;
        }
        let changed = self.driver.on_expires(std_now(), expires);
        self.report(changed, cx);
    }

    /// After the turn's reconcile: the datagrams held for the SAs it installed leave
    /// now; a policy newly in force (a reload, or SIGHUP after a CRL or certificate was
    /// replaced) gives keying its admission, SPI slots, credentials and authorities.
    pub(in crate::daemon) fn after_reconcile(&mut self, rec: &mut Reconciler) {
        self.driver.release(std_now());
        // ESP that arrived since the last reconcile proves its peer alive (no DPD needed).
        self.driver
            .note_packets(std_now(), &rec.take_negotiated_packets());
        if !rec.take_policy_change() {
            return;
        }
        let (admission, config): (Arc<dyn Admission>, _) = match rec.ike_setup() {
            Ok(Some(s)) => (s.admission, Some(s.config)),
            Ok(None) => {
                tracing::info!("the policy no longer uses IKEv2: deleting every IKE SA");
                (Arc::new(NoIke), None)
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "IKE setup of the new policy failed; keying keeps its admission and credentials");
                return;
            }
        };
        rec.set_ike_admission(admission.clone());
        let spis = Some(rec.static_spis());
        self.driver.reconfigure(std_now(), admission, spis, config);
    }

    /// Hand changed SAs to the reconciler and ask for a reconcile; refresh the view when
    /// they changed or [`VIEW_EVERY`] has passed (else by the next deadline).
    fn report(&mut self, changed: Option<Negotiated>, cx: &mut Cx<'_>) {
        let now = Instant::now();
        let refresh = changed.is_some() || now >= self.view_at + VIEW_EVERY;
        if let Some(states) = changed {
            cx.rec.set_negotiated(states);
            cx.turn.add(Cause::Keying);
        }
        self.view_stale = !refresh;
        if refresh {
            let wall = crate::clock::now().secs();
            cx.rec.view.ike = Some(self.driver.view(now.into_std(), wall));
            self.view_at = now;
        }
    }

    /// Send Deletes to every peer (daemon exit).
    pub(in crate::daemon) fn shutdown(&mut self) {
        self.driver.shutdown(std_now());
    }
}

impl Source for Ike {
    /// A datagram, or the error reading one (never fatal: the daemon must not die on
    /// what the network sends).
    type Event = std::io::Result<Datagram>;

    async fn next(&mut self) -> anyhow::Result<Self::Event> {
        Ok(self.driver.recv().await)
    }

    fn on_event(&mut self, d: Self::Event, cx: &mut Cx<'_>) -> ControlFlow<()> {
        match d {
            Ok(d) => {
                let changed = self.driver.on_datagram(std_now(), &d);
                self.report(changed, cx);
            }
            Err(e) => tracing::warn!(error = %e, "reading an IKE socket failed; datagram lost"),
        }
        ControlFlow::Continue(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let view = self.view_stale.then_some(self.view_at + VIEW_EVERY);
        let driver = self.driver.next_deadline(std_now()).map(Instant::from_std);
        [view, driver].into_iter().flatten().min()
    }

    fn on_deadline(&mut self, now: Instant, cx: &mut Cx<'_>) {
        let changed = self.driver.on_timeout(now.into_std());
        self.report(changed, cx);
    }
}
