//! What commands print about a desired set and the kernel. Pure: values in, text/JSON out
//! (only [`peers::read_xfrm_stat_all`] reads `/proc`).
//!
//! - [`desired`]: `plan`'s table and JSON of the objects this host needs;
//! - [`ip_batch`]: the same objects as `ip xfrm` commands (`render`);
//! - [`peers`]: owned kernel objects grouped by peer, stale objects and the kernel's XFRM
//!   error counters (`status`, and the daemon's per-peer metrics).

pub mod desired;
pub mod ip_batch;
pub mod peers;
