//! What changed in the policy between two compiles: settings (all or nothing) and hosts
//! (by name).

use policy_schema::{Host, Policy};

use rustc_hash::FxHashMap;

/// Everything but the hosts is the same: versions, defaults, ownership, zones, clusters,
/// exemptions and rules (rules name hosts, so a rename that a rule follows shows here).
pub(super) fn same_settings(old: &Policy, new: &Policy) -> bool {
    old.version == new.version
        && old.defaults == new.defaults
        && old.ownership == new.ownership
        && old.zones == new.zones
        && old.clusters == new.clusters
        && old.exemptions == new.exemptions
        && old.rules == new.rules
}

/// A host entry as it was before the change (None: it is new).
pub(super) type Before = (String, Option<Host>);

/// The hosts added, removed or changed between `old` and `new` (a rename gives both
/// names), by name, sorted, each with its entry before (None: it is new). None when more
/// than `limit` changed.
///
/// A list of the same length is compared position by position (the usual edit keeps the
/// order); otherwise by name.
pub(super) fn changed_hosts(old: &[Host], new: &[Host], limit: usize) -> Option<Vec<Before>> {
    let mut changed = Vec::new();
    if old.len() == new.len() {
        for (o, n) in old.iter().zip(new).filter(|(o, n)| o != n) {
            if n.name != o.name {
                changed.push((n.name.clone(), None));
            }
            changed.push((o.name.clone(), Some(o.clone())));
            if changed.len() > 2 * limit {
                return None;
            }
        }
    } else {
        let (o, n) = (by_name(old), by_name(new));
        let gone = old
            .iter()
            .filter(|h| n.get(h.name.as_str()).copied() != Some(h));
        changed.extend(gone.map(|h| (h.name.clone(), Some(h.clone()))));
        let added = new.iter().filter(|h| !o.contains_key(h.name.as_str()));
        changed.extend(added.map(|h| (h.name.clone(), None)));
    }
    // A rename onto another changed host's name: the entry before is the one of that name.
    changed.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.is_some().cmp(&a.1.is_some())));
    changed.dedup_by(|later, first| later.0 == first.0);
    (changed.len() <= limit).then_some(changed)
}

fn by_name(hosts: &[Host]) -> FxHashMap<&str, &Host> {
    hosts.iter().map(|h| (h.name.as_str(), h)).collect()
}
