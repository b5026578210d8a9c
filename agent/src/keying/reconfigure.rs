//! Keying's reconfiguration by a policy reload or a replaced CA or CRL file: admission,
//! credentials and authorities, timers, the static SAs' SPI slots; and the hooks through
//! which the `ike` endpoint asks the admission.

use std::sync::Arc;
use std::time::Instant;

use ike::sa::Config;

use super::{Admission, Keying, Pair, Settings, StaticSpis};

impl Keying {
    /// A new admission (policy reload): peers no longer admitted are deleted with their
    /// SAs; the others take the new terms.
    pub fn set_admission(&mut self, now: Instant, admission: Arc<dyn Admission>) {
        self.endpoint.config_mut().admit = Some(admit_hook(&admission));
        self.endpoint.config_mut().tunnel = Some(tunnel_hook(&admission));
        self.endpoint.config_mut().ports = Some(ports_hook(&admission));
        self.admission = admission;
        let pairs: Vec<Pair> = self.peers.keys().copied().collect();
        for pair in pairs {
            let peer = self.peers.get_mut(&pair).expect("listed");
            match self.admission.terms(pair.0, pair.1) {
                // Negotiated selectors cannot change in place: a new narrowing renegotiates.
                Some(terms) if terms.ports == peer.terms.ports => peer.terms = terms,
                _ => self.delete_peer(now, pair),
            }
        }
    }

    /// New credentials, authorities (CA certificates, CRLs) and suites (policy reload, or
    /// a CA or CRL file replaced): exchanges from now on use them, and established peers
    /// whose certificate they now refuse (revoked, no anchor) are deleted with their SAs at
    /// once. The admission and SPI hooks in force are kept.
    pub fn set_config(&mut self, now: Instant, mut config: Config) {
        let current = self.endpoint.config_mut();
        config.admit = current.admit.take();
        config.tunnel = current.tunnel.take();
        config.ports = current.ports.take();
        config.esp_spi = current.esp_spi.take();
        self.own_not_after = own_not_after(&config);
        *current = config;
        self.own_expiry_handled = false;
        self.recheck_peers(now);
        self.expire_certificates(now);
    }

    /// The authorities in force (anchors and CRLs).
    pub fn verifier(&self) -> &ike::cert::CertVerifier {
        &self.endpoint.config().verifier
    }

    /// The authorities in force, taken out (to keep them in a new config); keying holds
    /// an empty verifier until [`Keying::set_config`] or [`Keying::set_verifier`].
    pub fn take_verifier(&mut self) -> ike::cert::CertVerifier {
        std::mem::take(&mut self.endpoint.config_mut().verifier)
    }

    /// New authorities only (a CA or CRL file replaced): as [`Keying::set_config`].
    pub fn set_verifier(&mut self, now: Instant, verifier: ike::cert::CertVerifier) {
        self.endpoint.config_mut().verifier = verifier;
        self.recheck_peers(now);
    }

    /// New keying timers (policy reload): Child and IKE SAs made from now on are rekeyed on
    /// them; those in place keep the rekey time they were given.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    /// The static SAs' SPI slots (policy reload): new inbound SPIs avoid them, and Child
    /// SAs whose inbound SPI a static slot now covers are rekeyed at once.
    pub fn set_spis(&mut self, now: Instant, spis: Arc<StaticSpis>) {
        self.endpoint.config_mut().esp_spi = Some(spis.filter());
        for peer in self.peers.values_mut() {
            for c in peer
                .children
                .iter_mut()
                .filter(|c| !spis.is_free(c.sa.spi_in))
            {
                c.rekey_at = Some(now);
            }
        }
    }
}

/// The notAfter of our certificate in `config`.
pub(super) fn own_not_after(config: &Config) -> Option<i64> {
    (config.certificates.first()).and_then(|c| ike::cert::not_after(c))
}

/// The ike crate's admission hook over ours.
pub(super) fn admit_hook(admission: &Arc<dyn Admission>) -> ike::sa::Admit {
    let admission = admission.clone();
    Arc::new(move |peer| admission.admit(peer))
}

/// The ike crate's tunnel hook over our admission: a pair whose terms name a tunnel takes
/// a tunnel-mode Child SA between those networks, in both roles.
pub(super) fn tunnel_hook(admission: &Arc<dyn Admission>) -> ike::sa::TunnelPolicy {
    let admission = admission.clone();
    Arc::new(move |local, remote| admission.terms(local, remote).and_then(|t| t.tunnel))
}

/// The ike crate's narrowing hook over our admission: a pair a port rule alone admits
/// takes a Child SA of that rule's protocol and ports, in both roles.
pub(super) fn ports_hook(admission: &Arc<dyn Admission>) -> ike::sa::PortsPolicy {
    let admission = admission.clone();
    Arc::new(move |local, remote| admission.terms(local, remote).and_then(|t| t.ports))
}
