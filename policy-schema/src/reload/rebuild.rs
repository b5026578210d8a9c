//! Reused entries rebuilt for the walk: the previous policy's value (checked against the
//! hash of what the last load returned) with the kept offsets, shifted to where the piece
//! now is, and checked against the names the new text defines.

use std::cell::Cell;

use super::state::{value_hash, Kept, Piece, ABSENT};
use crate::model::{Endpoint, Host, Policy, Rule};
use crate::parse::{Known, Reuse};
use crate::raw::{Origin, RawHost, RawPolicy, RawRule, Sp};

/// What the last good load kept: its `[[hosts]]` and `[[rules]]` entries.
pub(crate) struct Seen {
    hosts: Kept,
    rules: Kept,
}

/// Where an optional value is.
fn at<T>(s: &Option<Sp<T>>) -> Option<usize> {
    s.as_ref().map(|s| s.at)
}

/// Which kind of entry a reused piece holds.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Host,
    Rule,
}

impl Seen {
    /// Complete once [`Seen::with_policy`] has the policy built from `raw`.
    pub fn record(
        pieces: &[Piece],
        headers: &[usize],
        raw: &RawPolicy,
        reused: &Reused,
    ) -> Option<Seen> {
        let hosts = Kept::record(
            pieces,
            headers,
            &raw.hosts,
            |h| &h.origin,
            |h, out| {
                out.extend([at(&h.name), at(&h.public_key)]);
                out.extend(h.addresses.iter().map(|a| Some(a.at)));
                out.extend(h.zones.iter().map(|z| Some(z.at)));
                out.extend(h.gateway_for.iter().map(|g| Some(g.at)));
            },
            |at| reused.value_hash(at, Kind::Host),
        )?;
        let rules = Kept::record(
            pieces,
            headers,
            &raw.rules,
            |r| &r.origin,
            |r, out| {
                out.extend([
                    at(&r.name),
                    at(&r.action),
                    r.to_at,
                    at(&r.mode),
                    at(&r.cipher),
                    at(&r.key_exchange),
                ]);
                out.extend([at(&r.protocol), r.ports_at]);
                out.extend(r.from.iter().chain(&r.to).map(|e| Some(e.at)));
                out.extend(r.ports.iter().map(|p| Some(p.at)));
            },
            |at| reused.value_hash(at, Kind::Rule),
        )?;
        Some(Seen { hosts, rules })
    }

    /// Once the load succeeded: the policy it returned.
    pub fn with_policy(self, p: &Policy) -> Seen {
        Seen {
            hosts: self.hosts.with_values(&p.hosts),
            rules: self.rules.with_values(&p.rules),
        }
    }

    /// `p` could be the policy the load that recorded this returned (each reused entry is
    /// checked against its hash as it is reused).
    pub fn describes(&self, p: &Policy) -> bool {
        p.hosts.len() == self.hosts.len() && p.rules.len() == self.rules.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.hosts.heap_bytes() + self.rules.heap_bytes()
    }
}

/// The pieces of a new text that a [`Seen`] matches, by the offset of their header.
pub(crate) struct Reused<'p> {
    seen: Option<(&'p Seen, &'p Policy)>,
    /// (header offset, kind, previous index), ascending.
    at: Vec<(usize, Kind, usize)>,
    /// Where the last lookup found its offset: the walk asks in file order, three times.
    cursor: Cell<usize>,
}

impl<'p> Reused<'p> {
    pub fn new(pieces: &[Piece], last: Option<(&'p Seen, &'p Policy)>) -> Reused<'p> {
        let mut at = Vec::new();
        if let Some((seen, _)) = last {
            let (mut host, mut rule) = (0, 0);
            for p in pieces {
                let Some(hash) = p.hash else { continue };
                if let Some(k) = seen.hosts.find(hash, host) {
                    host = k + 1;
                    at.push((p.start, Kind::Host, k));
                } else if let Some(k) = seen.rules.find(hash, rule) {
                    rule = k + 1;
                    at.push((p.start, Kind::Rule, k));
                }
            }
        }
        Reused {
            seen: last,
            at,
            cursor: Cell::new(0),
        }
    }

    fn index(&self, at: usize) -> Option<(Kind, usize)> {
        let c = self.cursor.get();
        let i = match self.at.get(c..c + 2) {
            Some([(a, ..), ..]) if *a == at => c,
            Some([_, (a, ..)]) if *a == at => c + 1,
            _ => self.at.binary_search_by_key(&at, |(a, ..)| *a).ok()?,
        };
        self.cursor.set(i);
        let (_, kind, k) = self.at[i];
        Some((kind, k))
    }

    /// The previous index of the entry of `kind` reused at `at`.
    fn of(&self, at: usize, kind: Kind) -> Option<usize> {
        self.index(at).filter(|(k, _)| *k == kind).map(|(_, i)| i)
    }

    /// The value hash of the entry of `kind` reused at `at`.
    fn value_hash(&self, at: usize, kind: Kind) -> Option<u64> {
        let (seen, _) = self.seen?;
        let k = self.of(at, kind)?;
        Some(match kind {
            Kind::Host => seen.hosts.value(k),
            Kind::Rule => seen.rules.value(k),
        })
    }

    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.at.len()
    }

    pub fn claims(&self, at: usize) -> bool {
        self.index(at).is_some()
    }
}

/// `offs` shifted to `at`: `None` for [`ABSENT`].
fn shifted(at: usize, offs: &[u32]) -> impl Iterator<Item = Option<usize>> + '_ {
    offs.iter()
        .map(move |&o| (o != ABSENT).then(|| at + o as usize))
}

/// Every name an endpoint refers to is defined in the new text (else the walk reports it).
fn defined(e: &Endpoint, known: &Known) -> bool {
    match e {
        Endpoint::Zone(n) => known.zones.contains(n),
        Endpoint::Host(n) => known.hosts.contains(n),
        Endpoint::Cluster(n) => known.clusters.contains(n),
        Endpoint::Authority(n) => known.authorities.contains(n),
        Endpoint::Any | Endpoint::Prefix(_) => true,
    }
}

impl Reuse for Reused<'_> {
    fn name(&self, at: usize) -> Option<&str> {
        let (_, prev) = self.seen?;
        Some(match self.index(at)? {
            (Kind::Host, k) => &prev.hosts[k].name,
            (Kind::Rule, k) => &prev.rules[k].name,
        })
    }

    fn host(&self, at: usize, label: String, known: &Known) -> Option<RawHost> {
        let (seen, prev) = self.seen?;
        let k = self.of(at, Kind::Host)?;
        let h: &Host = &prev.hosts[k];
        // Not the value the last load returned (the caller's `previous` is another
        // policy), or the walk would report a zone the new text no longer defines.
        if value_hash(h) != seen.hosts.value(k) || !h.zones.iter().all(|z| known.zones.contains(z))
        {
            return None;
        }
        let offs = seen.hosts.offsets_of(k);
        let lists = h.addresses.len() + h.zones.len() + h.gateway_for.len();
        if offs.len() != 2 + lists {
            return None;
        }
        let mut offs = shifted(at, offs);
        let mut next = || offs.next().flatten();
        Some(RawHost {
            origin: Origin {
                at,
                label,
                complete: true,
            },
            name: Some(Sp::new(h.name.clone(), next()?)),
            public_key: Some(Sp::new(h.public_key, next()?)),
            addresses: h
                .addresses
                .iter()
                .map(|a| Some(Sp::new(*a, next()?)))
                .collect::<Option<_>>()?,
            zones: h
                .zones
                .iter()
                .map(|z| Some(Sp::new(z.clone(), next()?)))
                .collect::<Option<_>>()?,
            encapsulation: h.encapsulation,
            gateway_for: h
                .gateway_for
                .iter()
                .map(|g| Some(Sp::new(*g, next()?)))
                .collect::<Option<_>>()?,
        })
    }

    fn rule(&self, at: usize, label: String, known: &Known) -> Option<RawRule> {
        let (seen, prev) = self.seen?;
        let k = self.of(at, Kind::Rule)?;
        let r: &Rule = &prev.rules[k];
        let ends = r.from.iter().chain(&r.to);
        // A rule with identity patterns is read again (rare; their offsets are not kept).
        if value_hash(r) != seen.rules.value(k)
            || !ends.clone().all(|e| defined(e, known))
            || !r.identities.is_empty()
        {
            return None;
        }
        let offs = seen.rules.offsets_of(k);
        if offs.len() != 8 + r.from.len() + r.to.len() + r.ports.len() {
            return None;
        }
        let mut offs = shifted(at, offs);
        let mut next = || offs.next().flatten();
        let (name, action, to_at) = (next()?, next()?, next()?);
        let (mode, cipher, keying) = (next(), next(), next());
        let (protocol, ports_at) = (next(), next());
        if protocol.is_some() != r.protocol.is_some() || ports_at.is_some() == r.ports.is_empty() {
            return None;
        }
        let mut ends = ends.map(|e| Some(Sp::new(e.clone(), next()?)));
        let from = ends.by_ref().take(r.from.len()).collect::<Option<_>>()?;
        let to = ends.collect::<Option<_>>()?;
        Some(RawRule {
            origin: Origin {
                at,
                label,
                complete: true,
            },
            name: Some(Sp::new(r.name.clone(), name)),
            from,
            to_at: Some(to_at),
            to,
            protocol: r.protocol.zip(protocol).map(|(p, at)| Sp::new(p, at)),
            ports_at,
            ports: r
                .ports
                .iter()
                .map(|p| Some(Sp::new(*p, next()?)))
                .collect::<Option<_>>()?,
            action: Some(Sp::new(r.action, action)),
            mode: mode.map(|at| Sp::new(r.mode, at)),
            cipher: cipher.map(|at| Sp::new(r.cipher, at)),
            key_exchange: keying.map(|at| Sp::new(r.key_exchange, at)),
            identities_at: None,
            identities: Vec::new(),
        })
    }
}
