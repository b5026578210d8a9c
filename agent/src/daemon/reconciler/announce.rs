//! Announcing the cluster addresses this member starts holding (`--announce-cluster-addresses`).

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::Reconciler;
use crate::kernel;

impl Reconciler {
    /// With `--announce-cluster-addresses`: announce each address of this host's clusters
    /// that it holds now and did not at the last reconcile (after its SAs are installed).
    pub(super) fn announce_new_holdings(&mut self, local: &crate::plan::LocalAddrs) {
        let (p, me) = (&self.loaded.ctx.policy, &self.loaded.ctx.identity.host);
        let held: BTreeSet<IpAddr> = p
            .clusters
            .iter()
            .filter(|c| c.members.contains(me))
            .flat_map(|c| c.addresses.iter().copied())
            .filter(|a| local.contains(a))
            .collect();
        for a in held.difference(&self.held).filter(|_| self.announce) {
            match kernel::announce::announce(*a) {
                Ok(true) => tracing::info!(address = %a,
                    "announced the cluster address now held here (gratuitous ARP / unsolicited NA)"),
                Ok(false) => {
                    tracing::debug!(address = %a, "not on an Ethernet interface; not announced")
                }
                Err(e) => {
                    tracing::warn!(address = %a, error = %format!("{e:#}"), "cannot announce the cluster address")
                }
            }
        }
        self.held = held;
    }
}
