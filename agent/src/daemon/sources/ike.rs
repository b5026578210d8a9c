//! IKEv2 as a source of the loop: datagrams on UDP 500/4500, keying's own timers and NAT
//! keepalives, the acquires the XFRM source routes here, and changes to the authorities'
//! CA and CRL files. It exists while the policy uses IKEv2: opened at start or by the
//! reload that turns IKEv2 on, closed by the one that turns it off
//! (`daemon::after_reconcile`). Whenever the negotiated SAs change, they go to the
//! reconciler and the turn reconciles ([`Cause::Keying`]).

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Cx, Source};
use crate::daemon::debounce::FileEvent;
use crate::daemon::ike::authority_files::{files_of, AuthorityFiles};
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
    /// Rebuild the view at the next report, whatever changed.
    view_now: bool,
    /// The authorities' CA and CRL files, watched.
    authority_files: AuthorityFiles,
    /// When a CRL next comes within its warning margin or passes nextUpdate.
    crl_check_at: Option<Instant>,
}

/// What the IKE source waits for.
pub(in crate::daemon) enum IkeInput {
    /// A datagram, or the error reading one (never fatal: the daemon must not die on
    /// what the network sends).
    Datagram(std::io::Result<Datagram>),
    /// An authority's CA or CRL file changed.
    AuthorityFiles(Vec<FileEvent>),
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
        // Only one socket binds UDP 4500: the reconciler's ESP-in-UDP ones (static SAs)
        // make way for the IKE ones, which decapsulate as well.
        rec.release_natt();
        let driver = IkeDriver::open(setup, Box::new(OsRng), IkePorts::default(), v6, std_now());
        let mut driver = match driver {
            Ok(d) => d,
            Err(e) => {
                rec.stop_ike();
                anyhow::bail!("opening the IKE sockets (UDP 500/4500): {e}");
            }
        };
        driver.reconfigure(std_now(), admission.clone(), Some(rec.static_spis()), None);
        rec.start_ike(admission);
        driver.crls.margins = crl_margins(rec.policy());
        let authority_files = AuthorityFiles::watch(files_of(rec.policy()));
        tracing::info!(ipv6 = v6, "IKEv2 running on UDP 500 and 4500");
        let mut ike = Ike {
            driver,
            view_at: Instant::now(),
            view_stale: false,
            view_now: false,
            authority_files,
            crl_check_at: None,
        };
        ike.check_crls();
        rec.view.ike = Some(ike.driver.view(std_now(), crate::clock::now().secs()));
        Ok(ike)
    }

    /// Logs CRLs near or past nextUpdate; arms the next look.
    fn check_crls(&mut self) {
        let wall = crate::clock::now().secs();
        let next = self
            .driver
            .warn_crls(i64::try_from(wall).unwrap_or(i64::MAX));
        self.crl_check_at = next.map(|t| {
            let ahead = u64::try_from(t).unwrap_or(0).saturating_sub(wall);
            Instant::now() + Duration::from_secs(ahead)
        });
    }

    /// The authority files are due to be read again: keying takes them (or keeps those
    /// in force when they do not load).
    fn reload_authorities(&mut self, cx: &mut Cx<'_>) {
        let loaded = crate::ike_setup::verifier(cx.rec.policy());
        let changed = self.driver.set_authorities(std_now(), loaded);
        self.check_crls();
        // The outcome shows in status even when no SA changed (a refused file).
        self.view_now = true;
        self.report(changed, cx);
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
    /// replaced) gives keying its admission, SPI slots, credentials, authorities and
    /// timers. `Break`: the policy no longer uses IKEv2; every IKE SA was deleted (the
    /// Deletes sent) and the source is to be closed ([`Ike::close`]).
    pub(in crate::daemon) fn after_reconcile(&mut self, rec: &mut Reconciler) -> ControlFlow<()> {
        self.driver.release(std_now());
        // ESP that arrived since the last reconcile proves its peer alive (no DPD needed).
        self.driver
            .note_packets(std_now(), &rec.take_negotiated_packets());
        if !rec.take_policy_change() {
            return ControlFlow::Continue(());
        }
        let (admission, config): (Arc<dyn Admission>, _) = match rec.ike_setup() {
            Ok(Some(s)) => (s.admission, Some((s.config, s.settings))),
            Ok(None) => {
                tracing::info!("the policy no longer uses IKEv2: deleting every IKE SA and closing the IKE sockets");
                self.driver
                    .reconfigure(std_now(), Arc::new(NoIke), None, None);
                return ControlFlow::Break(());
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "IKE setup of the new policy failed; keying keeps its admission and credentials");
                self.driver.refused_authorities(format!("{e:#}"));
                (self.view_now, self.view_stale) = (true, true);
                return ControlFlow::Continue(());
            }
        };
        rec.set_ike_admission(admission.clone());
        let spis = Some(rec.static_spis());
        self.driver.crls.margins = crl_margins(rec.policy());
        self.driver.reconfigure(std_now(), admission, spis, config);
        let files = files_of(rec.policy());
        if files != self.authority_files.files {
            self.authority_files = AuthorityFiles::watch(files);
        }
        self.check_crls();
        ControlFlow::Continue(())
    }

    /// Close the sockets (the source is dropped): the negotiated SAs leave the desired
    /// set, and the reconciler holds UDP 4500 again when static SAs need it.
    pub(in crate::daemon) fn close(self, rec: &mut Reconciler) {
        rec.stop_ike();
        tracing::info!("IKEv2 stopped: UDP 500 and 4500 closed");
    }

    /// Hand changed SAs to the reconciler and ask for a reconcile; refresh the view when
    /// they changed or [`VIEW_EVERY`] has passed (else by the next deadline).
    fn report(&mut self, changed: Option<Negotiated>, cx: &mut Cx<'_>) {
        let now = Instant::now();
        let refresh = changed.is_some()
            || std::mem::take(&mut self.view_now)
            || now >= self.view_at + VIEW_EVERY;
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

/// `crl-warning` per authority of `policy`.
fn crl_margins(policy: &policy_schema::Policy) -> std::collections::BTreeMap<String, u64> {
    (policy.authorities.iter())
        .map(|a| (a.name.clone(), a.crl_warning))
        .collect()
}

impl Source for Ike {
    type Event = IkeInput;

    async fn next(&mut self) -> anyhow::Result<IkeInput> {
        // Both are cancel-safe (a socket read, a channel receive).
        Ok(tokio::select! {
            d = self.driver.recv() => IkeInput::Datagram(d),
            evs = self.authority_files.next() => IkeInput::AuthorityFiles(evs),
        })
    }

    fn on_event(&mut self, input: IkeInput, cx: &mut Cx<'_>) -> ControlFlow<()> {
        match input {
            IkeInput::Datagram(Ok(d)) => {
                let changed = self.driver.on_datagram(std_now(), &d);
                self.report(changed, cx);
            }
            IkeInput::Datagram(Err(e)) => {
                tracing::warn!(error = %e, "reading an IKE socket failed; datagram lost")
            }
            IkeInput::AuthorityFiles(evs) => {
                self.authority_files.note(&evs, Instant::now());
            }
        }
        ControlFlow::Continue(())
    }

    fn next_deadline(&self) -> Option<Instant> {
        let view = self.view_stale.then_some(self.view_at + VIEW_EVERY);
        let driver = self.driver.next_deadline(std_now()).map(Instant::from_std);
        let files = self.authority_files.due();
        [view, driver, files, self.crl_check_at]
            .into_iter()
            .flatten()
            .min()
    }

    fn on_deadline(&mut self, now: Instant, cx: &mut Cx<'_>) {
        if self.authority_files.fire(now) {
            self.reload_authorities(cx);
        }
        if self.crl_check_at.is_some_and(|t| t <= now) {
            self.check_crls();
        }
        let changed = self.driver.on_timeout(now.into_std());
        self.report(changed, cx);
    }
}
