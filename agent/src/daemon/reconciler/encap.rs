//! The ESP-in-UDP sockets the reconciler holds open while encapsulated SAs need them.

use std::net::UdpSocket;

use super::Reconciler;
use crate::kernel::encap;
use crate::model::{Desired, NAT_T_PORT};

/// The UDP 4500 sockets, one per family, held while any SA of that family is encapsulated.
#[derive(Default)]
pub(super) struct EncapSockets {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Reconciler {
    /// Open or close the UDP 4500 sockets to match the desired encapsulated SAs. Opened
    /// before the SAs are installed, so inbound ESP-in-UDP is decapsulated from the first
    /// packet. (Non-ESP datagrams queue on the socket unread; NAT keepalives are dropped by
    /// the kernel's encap handler itself.)
    pub(super) fn sync_encap(&mut self, d: &Desired) {
        // Only one socket can bind 4500: when IKE runs, its NAT-T sockets decapsulate.
        let ike = self.ike.holds_natt;
        let need = |v6: bool| {
            !ike && d
                .states
                .iter()
                .any(|(k, s)| s.spec.encap.is_some() && k.dst.is_ipv6() == v6)
        };
        for (v6, slot) in [(false, &mut self.encap.v4), (true, &mut self.encap.v6)] {
            match (need(v6), slot.is_some()) {
                (true, false) => match encap::open_encap_socket(v6, NAT_T_PORT) {
                    Ok(s) => {
                        tracing::info!(ipv6 = v6, port = NAT_T_PORT, "ESP-in-UDP socket open");
                        *slot = Some(s);
                    }
                    Err(e) => tracing::error!(ipv6 = v6, error = %e,
                        "cannot open the ESP-in-UDP socket (is an IKE daemon holding UDP 4500?); encapsulated SAs will not receive"),
                },
                (false, true) => {
                    tracing::info!(ipv6 = v6, "ESP-in-UDP socket closed");
                    *slot = None;
                }
                _ => {}
            }
        }
        self.view.encap_sockets =
            usize::from(self.encap.v4.is_some()) + usize::from(self.encap.v6.is_some());
    }
}
