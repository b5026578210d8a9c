//! The pure core: policy + identity + addresses + time → desired XFRM objects
//! ([`desired`], [`Compiler`]), and the diff of desired against observed ([`diff`]).
//! Nothing here does I/O or reads the clock.
//!
//! `compile/` builds the desired set; `diff/` compares it with what the kernel holds and
//! takes only two things from `compile/`: which policies are backstops, and the keys a
//! patch touched ([`Touched`]).

use std::collections::BTreeSet;
use std::net::IpAddr;

mod compile;
pub mod diff;

pub use compile::backstop::{backstop_keys, is_backstop, needs_backstop};
pub use compile::{desired, Compiled, Compiler, PlanError, Touched};
// The keying layer (IKE Child SAs) uses the compile's SPI slots and selector helpers.
pub(crate) use compile::net::any_of as any_net;
pub(crate) use compile::net::host as host_net;
pub(crate) use compile::spi::{SpiTable, SLOT_SIZE};
pub(crate) use compile::states::mirror;
// IKEv2 admission gives negotiated SAs the reqid of the rule's template.
pub(crate) use compile::ike_tunnels;
pub(crate) use compile::Layout;

#[cfg(test)]
pub(crate) mod testkit;

/// A moment, in nanoseconds since the Unix epoch (passed in; the plan never reads a clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub fn from_secs(s: u64) -> Timestamp {
        Timestamp(s.saturating_mul(1_000_000_000))
    }
    pub fn secs(self) -> u64 {
        self.0 / 1_000_000_000
    }
    pub fn nanos(self) -> u64 {
        self.0
    }
}

/// The addresses configured on this host right now (only cluster addresses depend on it).
pub type LocalAddrs = BTreeSet<IpAddr>;
