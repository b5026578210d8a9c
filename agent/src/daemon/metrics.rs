//! Prometheus metrics (opt-in, `--metrics ADDR:PORT`). Values are read at scrape time from
//! the daemon's view and one kernel dump, so nothing polls between scrapes; only the
//! reconcile-duration histogram is kept across scrapes.

use std::collections::BTreeMap;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::view::DaemonView;
use crate::model::SaDir;
use crate::report::peers::Status;

/// Metrics that accumulate between scrapes.
#[derive(Clone, Debug)]
pub struct Metrics {
    pub reconcile_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        // 0.5 ms … ~16 s.
        Metrics {
            reconcile_seconds: Histogram::new(exponential_buckets(0.0005, 2.0, 16)),
        }
    }
}

type Labels = Vec<(String, String)>;

fn counter(reg: &mut Registry, name: &str, help: &str, v: u64) {
    let c: Counter = Counter::default();
    c.inc_by(v);
    reg.register(name, help, c);
}

fn gauge(reg: &mut Registry, name: &str, help: &str, v: usize) {
    let g: Gauge = Gauge::default();
    g.set(i64::try_from(v).unwrap_or(i64::MAX));
    reg.register(name, help, g);
}

/// The text exposition for one scrape. `kernel` is None when the dump failed (the
/// per-peer series are then absent rather than wrong).
pub fn render(
    m: &Metrics,
    v: &DaemonView,
    kernel: Option<&Status>,
    xfrm_stat: &BTreeMap<String, u64>,
) -> String {
    let mut reg = Registry::with_prefix("xfrm_agent");
    gauge(
        &mut reg,
        "owned_policies",
        "Owned XFRM policies in the kernel after the last reconcile",
        v.owned_policies,
    );
    gauge(
        &mut reg,
        "owned_states",
        "Owned ESP SAs in the kernel after the last reconcile",
        v.owned_states,
    );
    let reloads = Family::<Labels, Counter>::default();
    reloads
        .get_or_create(&vec![("result".into(), "ok".into())])
        .inc_by(v.reloads_ok);
    reloads
        .get_or_create(&vec![("result".into(), "failed".into())])
        .inc_by(v.reloads_failed);
    reg.register("reloads", "Policy file reloads by result", reloads);
    reg.register(
        "reconcile_duration_seconds",
        "Time of one reconcile (observe, diff, apply, verify)",
        m.reconcile_seconds.clone(),
    );
    counter(&mut reg, "reconciles", "Reconciles run", v.reconciles);
    counter(
        &mut reg,
        "drift_repairs",
        "Reconciles that restored objects someone else changed or removed",
        v.drift_repairs,
    );
    counter(
        &mut reg,
        "rotations",
        "Epoch rotations applied",
        v.rotations,
    );
    counter(
        &mut reg,
        "unknown_peer_acquires",
        "Kernel acquires for addresses outside the inventory",
        v.unknown_peer_acquires,
    );
    counter(
        &mut reg,
        "soft_expires",
        "Owned SAs that reached their soft lifetime (a missed rotation)",
        v.soft_expires,
    );
    if let Some(ike) = &v.ike {
        register_ike(&mut reg, ike);
    }
    if let Some(s) = kernel {
        let bytes = Family::<Labels, Counter>::default();
        let packets = Family::<Labels, Counter>::default();
        for p in &s.peers {
            for sa in p.sas.iter().filter(|sa| sa.installed) {
                let dir = match sa.dir {
                    SaDir::In => "in",
                    SaDir::Out => "out",
                };
                let l = vec![("peer".into(), p.peer.clone()), ("dir".into(), dir.into())];
                bytes.get_or_create(&l).inc_by(sa.bytes);
                packets.get_or_create(&l).inc_by(sa.packets);
            }
        }
        reg.register(
            "peer_bytes",
            "ESP payload bytes per peer and direction",
            bytes,
        );
        reg.register(
            "peer_packets",
            "ESP packets per peer and direction",
            packets,
        );
    }
    let stat = Family::<Labels, Counter>::default();
    for (k, n) in xfrm_stat {
        stat.get_or_create(&vec![("counter".into(), k.clone())])
            .inc_by(*n);
    }
    reg.register(
        "kernel_xfrm_stat",
        "The kernel's /proc/net/xfrm_stat counters",
        stat,
    );
    let mut out = String::new();
    encode(&mut out, &reg).expect("writing to a String cannot fail");
    out
}

/// IKEv2: IKE SAs and peers, failures by reason, our certificate's expiry, and each
/// peer's establishment time.
fn register_ike(reg: &mut Registry, ike: &super::ike::view::IkeView) {
    gauge(reg, "ike_sas", "IKE SAs held (any state)", ike.ike_sas);
    gauge(reg, "ike_peers", "Peers keyed over IKEv2", ike.peers.len());
    let failures = Family::<Labels, Counter>::default();
    for (reason, n) in &ike.failures {
        failures
            .get_or_create(&vec![("reason".into(), reason.clone())])
            .inc_by(*n);
    }
    reg.register("ike_failures", "Failed IKE SAs by reason", failures);
    gauge(
        reg,
        "ike_half_open",
        "Responder IKE SAs waiting for IKE_AUTH",
        ike.half_open,
    );
    let refused = Family::<Labels, Counter>::default();
    for (reason, n) in &ike.refused {
        (refused.get_or_create(&vec![("reason".into(), reason.clone())])).inc_by(*n);
    }
    reg.register(
        "ike_dos",
        "The IKE responder's defences: cookies sent, limits hit, half-open SAs expired",
        refused,
    );
    counter(
        reg,
        "ike_acquires_merged",
        "Acquires merged into an exchange already running",
        ike.acquires_merged,
    );
    counter(
        reg,
        "ike_kernel_expires",
        "Negotiated SAs that reached a kernel lifetime (their Child SA was rekeyed at once)",
        ike.kernel_expires,
    );
    counter(
        reg,
        "ike_acquires_in_backoff",
        "Acquires for request peers that did not answer IKE, within their backoff (clear)",
        ike.acquires_in_backoff,
    );
    gauge(
        reg,
        "ike_clear_peers",
        "Request peers that did not answer IKE: their traffic flows clear until the retry",
        ike.clear_peers.len(),
    );
    if let Some(t) = ike.certificate_not_after {
        let g: Gauge = Gauge::default();
        g.set(t);
        reg.register(
            "ike_certificate_expiry_timestamp_seconds",
            "When our own certificate expires (Unix seconds)",
            g,
        );
    }
    let established = Family::<Labels, Gauge>::default();
    for p in &ike.peers {
        let l = vec![
            (
                "peer".into(),
                p.address.map(|a| a.to_string()).unwrap_or_default(),
            ),
            ("identity".into(), p.identity.clone()),
            ("authority".into(), p.authority.clone()),
        ];
        (established.get_or_create(&l))
            .set(i64::try_from(p.established_unix.unwrap_or(0)).unwrap_or(0));
    }
    reg.register(
        "ike_peer_established_timestamp_seconds",
        "When each peer's IKE SA was established (Unix seconds)",
        established,
    );
    register_ike_validity(reg, ike);
}

/// Revocation and expiry: CRLs' distance to nextUpdate, refused authority files, peers
/// cut, our certificate's expiry.
fn register_ike_validity(reg: &mut Registry, ike: &super::ike::view::IkeView) {
    let crls = Family::<Labels, Gauge>::default();
    for c in ike.crls.iter().filter(|c| c.seconds_left.is_some()) {
        let l = vec![
            ("authority".into(), c.authority.clone()),
            ("issuer".into(), c.issuer.clone()),
        ];
        crls.get_or_create(&l).set(c.seconds_left.unwrap_or(0));
    }
    reg.register(
        "ike_crl_next_update_seconds",
        "Seconds until each CRL's nextUpdate (negative: past; strict revocation then refuses new peers)",
        crls,
    );
    counter(
        reg,
        "ike_authority_load_errors",
        "Loads of the authorities' CA and CRL files refused (the ones in force were kept)",
        ike.authority_errors,
    );
    counter(
        reg,
        "ike_peers_cut",
        "Established peers deleted because their certificate was revoked, expired or lost its anchor",
        ike.peers_cut,
    );
    gauge(
        reg,
        "ike_certificate_expired",
        "1 when our own certificate has expired (no IKE SA, new exchanges refused)",
        usize::from(ike.certificate_expired),
    );
    counter(
        reg,
        "ike_refused_own_certificate_expired",
        "Exchanges refused because our own certificate expired",
        ike.refused_own_expired,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_and_values() {
        let v = DaemonView {
            reloads_ok: 3,
            reloads_failed: 1,
            drift_repairs: 2,
            owned_policies: 7,
            ..DaemonView::default()
        };
        let m = Metrics::default();
        m.reconcile_seconds.observe(0.004);
        let stat = BTreeMap::from([("XfrmInStateSeqError".to_string(), 5)]);
        let t = render(&m, &v, None, &stat);
        for want in [
            "xfrm_agent_owned_policies 7",
            "xfrm_agent_reloads_total{result=\"ok\"} 3",
            "xfrm_agent_reloads_total{result=\"failed\"} 1",
            "xfrm_agent_drift_repairs_total 2",
            "xfrm_agent_reconcile_duration_seconds_count 1",
            "xfrm_agent_kernel_xfrm_stat_total{counter=\"XfrmInStateSeqError\"} 5",
        ] {
            assert!(t.contains(want), "missing {want:?} in:\n{t}");
        }
        assert!(!t.contains("ike_"), "no IKE series without IKE");
    }

    #[test]
    fn ike_series_by_reason_and_peer() {
        use crate::daemon::ike::view::{IkePeerView, IkeView};
        let v = DaemonView {
            ike: Some(IkeView {
                ike_sas: 2,
                half_open: 1,
                refused: BTreeMap::from([("cookie-sent".to_string(), 19_990)]),
                failures: BTreeMap::from([("auth-failed".to_string(), 3)]),
                certificate_not_after: Some(1_900_000_000),
                crls: vec![crate::daemon::ike::crls::CrlView {
                    authority: "corp".into(),
                    issuer: "CN=Corp CA".into(),
                    next_update: Some(1_800_000_000),
                    seconds_left: Some(-5),
                    state: crate::daemon::ike::crls::CrlState::Outdated,
                }],
                authority_errors: 2,
                peers_cut: 1,
                peers: vec![IkePeerView {
                    identity: "host9.corp".into(),
                    authority: "corp".into(),
                    address: Some("10.1.2.3".parse().unwrap()),
                    established_unix: Some(1_700_000_000),
                    ..IkePeerView::default()
                }],
                ..IkeView::default()
            }),
            ..DaemonView::default()
        };
        let t = render(&Metrics::default(), &v, None, &BTreeMap::new());
        for want in [
            "xfrm_agent_ike_sas 2",
            "xfrm_agent_ike_peers 1",
            "xfrm_agent_ike_half_open 1",
            "xfrm_agent_ike_dos_total{reason=\"cookie-sent\"} 19990",
            "xfrm_agent_ike_failures_total{reason=\"auth-failed\"} 3",
            "xfrm_agent_ike_certificate_expiry_timestamp_seconds 1900000000",
            "xfrm_agent_ike_peer_established_timestamp_seconds{peer=\"10.1.2.3\",identity=\"host9.corp\",authority=\"corp\"} 1700000000",
            "xfrm_agent_ike_crl_next_update_seconds{authority=\"corp\",issuer=\"CN=Corp CA\"} -5",
            "xfrm_agent_ike_authority_load_errors_total 2",
            "xfrm_agent_ike_peers_cut_total 1",
            "xfrm_agent_ike_certificate_expired 0",
        ] {
            assert!(t.contains(want), "missing {want:?} in:\n{t}");
        }
    }
}
