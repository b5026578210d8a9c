//! Which peers IKEv2 keys and admits, from the policy: the [`keying::Admission`] the daemon
//! hands to [`keying::Keying`].
//!
//! A pair (our address, the peer's) is looked up like the compiler's transport SAs: the
//! rules covering it in file order, up to the first one without a protocol (it takes all
//! the pair's remaining traffic) — the pair's *chain*. A negotiated Child SA covers every
//! protocol between the two hosts, so it must be good for every ESP rule in the chain:
//!
//! - an inventory peer is keyed over IKEv2 when an ESP rule of the chain says
//!   `key-exchange = "ikev2"` (the compiler then makes no static SAs for the pair); it is
//!   admitted with a certificate of an authority of scope `any` or one the chain names for
//!   its side, that carries its address as an iPAddress SAN (binding the certificate to
//!   the inventory entry);
//! - any other peer is keyed over IKEv2 when some authority is admitted on its side by
//!   every ESP rule of the chain; it is admitted only when **every** ESP rule of the chain
//!   admits its own authority on its side, and its certificate matches the authority's and each rule's
//!   identity patterns. (A partner admitted by one port's rule would otherwise get an SA
//!   that the kernel also accepts for a later rule's traffic with the same reqid.)
//!
//! The terms' reqid is the one of the chain's first IKEv2-keyed rule's template (reqid =
//! range start + cipher × 2 + mode, `plan::Layout`), so the kernel's catch-all policy finds
//! the negotiated SA.
//!
//! A pair of gateways (our outer address, the peer's) that no transport rule keys over
//! IKEv2 is keyed in tunnel mode when a tunnel rule between them says `key-exchange =
//! "ikev2"` (`plan::ike_tunnels`): the terms name the networks behind each gateway and
//! the reqid of that rule's tunnel template. The peer is an inventory gateway: admitted
//! like an inventory peer, by an authority of scope `any` whose certificate carries its
//! address (tunnel rules name no `ca:`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use ipnet::IpNet;
use policy_schema::{CertIdentity, Family, IdentityPattern, KeyExchange, Mode, Policy, Scope};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::keying::{self, lifetime, net_selector, Settings, Terms};
use crate::plan::{ike_tunnels, Layout};

/// One transport-mode rule, resolved.
struct Rule {
    name: String,
    from: Vec<IpNet>,
    to: Vec<IpNet>,
    /// Protocol family the rule is limited to (icmp, icmpv6), if any.
    family: Option<Family>,
    all_protocols: bool,
    esp: bool,
    /// `request`: clear traffic is allowed, so an unanswered exchange is given up.
    request: bool,
    ikev2: bool,
    /// Authorities admitted for a peer on the `from` / `to` side.
    admits_from: Vec<String>,
    admits_to: Vec<String>,
    identities: Vec<IdentityPattern>,
    reqid: u32,
}

/// A rule of a pair's chain, with the authorities it admits for the peer's side.
struct Link<'a> {
    rule: &'a Rule,
    admits: Vec<&'a str>,
}

/// An authority as admission sees it.
struct Authority {
    scope: Scope,
    identities: Vec<IdentityPattern>,
}

/// A gateway pair keyed in tunnel mode.
struct TunnelKeying {
    rule: String,
    reqid: u32,
    tunnel: ike::sa::Tunnel,
}

/// The policy's IKEv2 admission for one host.
pub struct PolicyAdmission {
    rules: Vec<Rule>,
    /// Gateway pairs (our outer address, the peer's) keyed in tunnel mode.
    tunnels: BTreeMap<(IpAddr, IpAddr), TunnelKeying>,
    /// Our addresses: the host's and those of the clusters it is a member of.
    local: BTreeSet<IpAddr>,
    /// Every inventory address (hosts and clusters).
    inventory: BTreeSet<IpAddr>,
    authorities: HashMap<String, Authority>,
    replay_window: u32,
    lifetime: crate::model::Lifetime,
    request_timeout: std::time::Duration,
}

impl PolicyAdmission {
    /// Admission of host `host` under `policy`; SA lifetimes follow `settings`.
    pub fn new(policy: &Policy, host: &str, settings: &Settings) -> PolicyAdmission {
        let layout = Layout::new(policy);
        let rules = (policy.rules.iter())
            .filter(|r| r.mode == Mode::Transport)
            .map(|r| Rule {
                name: r.name.clone(),
                from: policy.resolve_all(&r.from),
                to: policy.resolve_all(&r.to),
                family: r.protocol.and_then(|p| p.family()),
                all_protocols: r.protocol.is_none(),
                esp: r.action.uses_esp(),
                request: r.action == policy_schema::Action::Request,
                ikev2: r.key_exchange == KeyExchange::Ikev2,
                admits_from: r.admits.from.clone(),
                admits_to: r.admits.to.clone(),
                identities: r.identities.clone(),
                reqid: layout.reqid(r.cipher, r.mode),
            })
            .collect();
        let mut local = BTreeSet::new();
        if let Some(h) = policy.host(host) {
            local.extend(h.addresses.iter().copied());
        }
        let clusters = policy.clusters.iter();
        for c in clusters.filter(|c| c.members.iter().any(|m| m == host)) {
            local.extend(c.addresses.iter().copied());
        }
        let hosts = policy.hosts.iter().flat_map(|h| &h.addresses);
        let inventory = hosts
            .chain(policy.clusters.iter().flat_map(|c| &c.addresses))
            .copied()
            .collect();
        let authorities = (policy.authorities.iter())
            .map(|a| {
                let v = Authority {
                    scope: a.scope,
                    identities: a.identities.clone(),
                };
                (a.name.clone(), v)
            })
            .collect();
        let me = policy.host(host);
        let tunnels = (me
            .map(|me| ike_tunnels(policy, me))
            .unwrap_or_default()
            .into_iter())
        .map(|(pair, t)| {
            let selectors = |nets: &[IpNet]| nets.iter().map(net_selector).collect();
            let keying = TunnelKeying {
                reqid: layout.reqid(t.cipher, Mode::Tunnel),
                tunnel: ike::sa::Tunnel {
                    local: selectors(&t.local_nets),
                    remote: selectors(&t.remote_nets),
                },
                rule: t.rule,
            };
            (pair, keying)
        })
        .collect();
        PolicyAdmission {
            rules,
            tunnels,
            local,
            inventory,
            authorities,
            replay_window: policy.defaults.replay_window,
            lifetime: lifetime(settings.rekey_after),
            request_timeout: std::time::Duration::from_secs(policy.defaults.request_timeout),
        }
    }

    /// Whether any pair of ours is keyed over IKEv2 at all (else no IKE is needed here).
    pub fn keys_any(&self) -> bool {
        let ours = |nets: &[IpNet]| self.local.iter().any(|a| contains(nets, a));
        !self.tunnels.is_empty()
            || self.rules.iter().any(|r| {
                r.esp
                    && ((r.ikev2 && (ours(&r.from) || ours(&r.to)))
                        || (!r.admits_from.is_empty() && ours(&r.to))
                        || (!r.admits_to.is_empty() && ours(&r.from)))
            })
    }

    /// The rules covering the pair, first match: up to the first without a protocol.
    fn chain(&self, local: IpAddr, remote: IpAddr) -> Vec<Link<'_>> {
        let mut out = Vec::new();
        if !self.local.contains(&local) || local.is_ipv4() != remote.is_ipv4() {
            return out;
        }
        let fam = Family::of(&local);
        for r in self
            .rules
            .iter()
            .filter(|r| r.family.is_none_or(|f| f == fam))
        {
            let peer_from = contains(&r.from, &remote) && contains(&r.to, &local);
            let peer_to = contains(&r.to, &remote) && contains(&r.from, &local);
            if !(peer_from || peer_to) {
                continue;
            }
            let mut admits: Vec<&str> = Vec::new();
            let sides = [(peer_from, &r.admits_from), (peer_to, &r.admits_to)];
            for n in sides.into_iter().filter(|s| s.0).flat_map(|s| s.1.iter()) {
                if !admits.contains(&n.as_str()) {
                    admits.push(n);
                }
            }
            out.push(Link { rule: r, admits });
            if r.all_protocols {
                break;
            }
        }
        out
    }

    /// The first ESP rule of the chain that keys the pair over IKEv2. A peer outside the
    /// inventory is keyed only when some authority is admitted by every ESP rule of the
    /// chain (else no certificate could be admitted: no exchange is started).
    fn keying_rule<'a>(&self, chain: &'a [Link<'a>], remote: IpAddr) -> Option<&'a Rule> {
        let mut esp = chain.iter().filter(|l| l.rule.esp);
        if self.inventory.contains(&remote) {
            return esp.find(|l| l.rule.ikev2).map(|l| l.rule);
        }
        let first = esp.next()?;
        let everywhere = |n: &&str| {
            chain
                .iter()
                .filter(|l| l.rule.esp)
                .all(|l| l.admits.contains(n))
        };
        first.admits.iter().any(everywhere).then_some(first.rule)
    }

    /// Whether `authority` may vouch for a peer of the chain and its certificate matches.
    fn admitted(
        &self,
        chain: &[Link],
        remote: IpAddr,
        authority: &str,
        cert: &CertIdentity,
    ) -> bool {
        let Some(a) = self.authorities.get(authority) else {
            return false;
        };
        let any_of = |ps: &[IdentityPattern]| ps.is_empty() || ps.iter().any(|p| p.matches(cert));
        if !any_of(&a.identities) {
            return false;
        }
        let esp = || chain.iter().filter(|l| l.rule.esp);
        if self.inventory.contains(&remote) {
            let named = esp().any(|l| l.admits.contains(&authority));
            return (a.scope == Scope::Any || named) && cert.ips.contains(&remote);
        }
        esp().all(|l| l.admits.contains(&authority) && any_of(&l.rule.identities))
    }
}

impl keying::Admission for PolicyAdmission {
    fn terms(&self, local: IpAddr, remote: IpAddr) -> Option<Terms> {
        let chain = self.chain(local, remote);
        let (reqid, tunnel) = match self.keying_rule(&chain, remote) {
            Some(rule) => (rule.reqid, None),
            None => {
                let t = self.tunnels.get(&(local, remote))?;
                (t.reqid, Some(t.tunnel.clone()))
            }
        };
        Some(Terms {
            reqid,
            replay_window: self.replay_window,
            lifetime: self.lifetime,
            tunnel,
            // Only when every ESP rule of the chain lets clear traffic through: a
            // `require` rule's traffic has no other way than this exchange.
            fallback: (chain.iter().filter(|l| l.rule.esp))
                .all(|l| l.rule.request)
                .then_some(self.request_timeout),
        })
    }

    fn admit(&self, peer: &ike::sa::Admission<'_>) -> bool {
        let (local, remote) = (peer.local.ip(), peer.remote.ip());
        let chain = self.chain(local, remote);
        let Some(cert) = cert_identity(peer.certificate) else {
            return false;
        };
        let Some(rule) = self.keying_rule(&chain, remote) else {
            return self.admit_gateway((local, remote), peer, &cert);
        };
        let ok = self.admitted(&chain, remote, peer.authority, &cert);
        if !ok {
            tracing::info!(peer = %remote, rule = %rule.name, authority = %peer.authority,
                subject = %peer.subject, "IKEv2 peer refused: not admitted by every rule covering the pair");
        }
        ok
    }
}

impl PolicyAdmission {
    /// A peer gateway of a tunnel keyed over IKEv2: an inventory host, so an authority of
    /// scope `any` whose certificate (matching its `identities`) carries its address.
    fn admit_gateway(
        &self,
        (local, remote): (IpAddr, IpAddr),
        peer: &ike::sa::Admission<'_>,
        cert: &CertIdentity,
    ) -> bool {
        let Some(t) = self.tunnels.get(&(local, remote)) else {
            tracing::info!(peer = %remote, "IKEv2 peer refused: no rule keys this pair over IKEv2");
            return false;
        };
        let ok = self.authorities.get(peer.authority).is_some_and(|a| {
            a.scope == Scope::Any
                && (a.identities.is_empty() || a.identities.iter().any(|p| p.matches(cert)))
                && cert.ips.contains(&remote)
        });
        if !ok {
            tracing::info!(peer = %remote, rule = %t.rule, authority = %peer.authority,
                subject = %peer.subject, "IKEv2 gateway refused: needs a certificate of a scope = \"any\" authority carrying its address");
        }
        ok
    }
}

fn contains(nets: &[IpNet], a: &IpAddr) -> bool {
    nets.iter().any(|n| n.contains(a))
}

/// What identity patterns see of a certificate: subject attributes by short name, and the
/// DNS, email and IP subjectAltNames. `None` if it does not parse (then nothing matches).
pub fn cert_identity(der: &[u8]) -> Option<CertIdentity> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut id = CertIdentity::default();
    for attr in cert.subject().iter_attributes() {
        let name = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
            .map_or_else(|_| attr.attr_type().to_id_string(), str::to_string);
        if let Ok(v) = attr.as_str() {
            id.subject.push((name, v.to_string()));
        }
    }
    let san = cert.subject_alternative_name().ok().flatten();
    for name in san.iter().flat_map(|s| &s.value.general_names) {
        match name {
            GeneralName::DNSName(d) => id.dns.push(d.to_string()),
            GeneralName::RFC822Name(e) => id.emails.push(e.to_string()),
            GeneralName::IPAddress(b) => match b.len() {
                4 => id.ips.push(IpAddr::from(<[u8; 4]>::try_from(*b).ok()?)),
                16 => id.ips.push(IpAddr::from(<[u8; 16]>::try_from(*b).ok()?)),
                _ => {}
            },
            _ => {}
        }
    }
    Some(id)
}

#[cfg(test)]
#[path = "admission_tests.rs"]
pub(super) mod tests;
