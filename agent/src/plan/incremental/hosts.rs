//! What changed in the policy between two compiles: settings (all or nothing) and hosts
//! (by name).

use policy_schema::{Host, Policy};

use crate::fasthash::FastMap;

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

/// The names of the hosts added, removed or changed between `old` and `new` (a rename
/// gives both names), sorted; None when more than `limit` changed.
///
/// A list of the same length is compared position by position (the usual edit keeps the
/// order); otherwise by name.
pub(super) fn changed_hosts(old: &[Host], new: &[Host], limit: usize) -> Option<Vec<String>> {
    let mut names = Vec::new();
    if old.len() == new.len() {
        for (o, n) in old.iter().zip(new) {
            if o != n {
                names.push(o.name.clone());
                if n.name != o.name {
                    names.push(n.name.clone());
                }
                if names.len() > 2 * limit {
                    return None;
                }
            }
        }
    } else {
        let (o, n) = (by_name(old), by_name(new));
        let gone = old
            .iter()
            .filter(|h| n.get(h.name.as_str()).copied() != Some(h));
        let added = new.iter().filter(|h| !o.contains_key(h.name.as_str()));
        names.extend(gone.chain(added).map(|h| h.name.clone()));
    }
    names.sort_unstable();
    names.dedup();
    (names.len() <= limit).then_some(names)
}

fn by_name(hosts: &[Host]) -> FastMap<&str, &Host> {
    hosts.iter().map(|h| (h.name.as_str(), h)).collect()
}

/// Bring the remembered hosts in step with `new`, copying only what changed when the
/// list kept its length.
pub(super) fn update_hosts(old: &mut Vec<Host>, new: &[Host]) {
    if old.len() != new.len() {
        *old = new.to_vec();
        return;
    }
    for (o, n) in old.iter_mut().zip(new) {
        if o != n {
            o.clone_from(n);
        }
    }
}
