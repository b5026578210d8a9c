//! The kernel side: observe the SPD and SAD over XFRM netlink, apply ops in batches, read
//! this namespace's addresses, enter a named namespace.
//!
//! Everything that talks to the kernel lives here; `plan` never imports it.

pub mod addrs;
pub mod decode;
pub mod encap;
pub mod encode;
pub mod error;
pub mod events;
pub mod netns;
pub mod socket;

use netlink_packet_core::ParseableParametrized;
use netlink_packet_xfrm::{XfrmMessage, XFRM_MSG_GETPOLICY, XFRM_MSG_GETSA};
use netlink_sys::constants::NETLINK_XFRM;
use policy_schema::Ownership;

use crate::model::{Algorithm, Observed, Op, OpKind};
pub use decode::Decoded;
pub use error::{ErrorKind, KernelError, Nack};
pub use socket::NlSocket;

/// Open an XFRM netlink socket in the current network namespace.
pub fn open() -> Result<NlSocket, KernelError> {
    NlSocket::open(NETLINK_XFRM)
}

fn parse(m: &socket::RawMsg<'_>) -> Option<XfrmMessage> {
    match XfrmMessage::parse_with_param(m.payload, m.ty) {
        Ok(x) => Some(x),
        Err(e) => {
            tracing::warn!(error = %e, msg_type = m.ty, "skipping undecodable XFRM object");
            None
        }
    }
}

/// Dump the SPD and SAD: owned objects in full, foreign ones as keys.
pub fn observe(sock: &mut NlSocket, own: &Ownership) -> Result<Observed, KernelError> {
    let mut obs = Observed::default();
    dump_policies(sock, own, &mut obs)?;
    dump_states(sock, own, &mut obs)?;
    Ok(obs)
}

fn dump_policies(
    sock: &mut NlSocket,
    own: &Ownership,
    obs: &mut Observed,
) -> Result<(), KernelError> {
    let mut acc = Observed::default();
    sock.dump(
        XFRM_MSG_GETPOLICY,
        &[],
        |m| {
            if let Some(XfrmMessage::AddPolicy(p)) = parse(m) {
                match decode::policy(&p, own) {
                    Decoded::Owned(k, s) => {
                        acc.policies.insert(k, s);
                    }
                    Decoded::Foreign(k) => {
                        acc.foreign_policies.insert(k);
                    }
                    Decoded::Skip => {}
                }
            }
            Ok(())
        },
        || {},
    )?;
    obs.policies = acc.policies;
    obs.foreign_policies = acc.foreign_policies;
    Ok(())
}

fn dump_states(
    sock: &mut NlSocket,
    own: &Ownership,
    obs: &mut Observed,
) -> Result<(), KernelError> {
    let mut acc = Observed::default();
    sock.dump(
        XFRM_MSG_GETSA,
        &[],
        |m| {
            if let Some(XfrmMessage::AddSa(s)) = parse(m) {
                match decode::sa(&s, own) {
                    Decoded::Owned(k, o) => {
                        acc.states.insert(k, o);
                    }
                    Decoded::Foreign(k) => {
                        acc.foreign_states.insert(k);
                    }
                    Decoded::Skip => {}
                }
            }
            Ok(())
        },
        || {},
    )?;
    obs.states = acc.states;
    obs.foreign_states = acc.foreign_states;
    Ok(())
}

/// Execute ops in order (batched); one result per op. Deleting what is gone is success.
/// A NACK on an SA write that means "this kernel lacks ESP / this algorithm" is classified.
pub fn apply(sock: &mut NlSocket, ops: &[Op]) -> Result<Vec<Result<(), KernelError>>, KernelError> {
    let reqs: Vec<_> = ops.iter().map(|o| encode::op_request(&o.kind)).collect();
    let acks = sock.transact(&reqs)?;
    Ok(ops
        .iter()
        .zip(acks)
        .map(|(op, ack)| ack.or_else(|n| classify(&op.kind, n)))
        .collect())
}

fn classify(op: &OpKind, nack: Nack) -> Result<(), KernelError> {
    match op {
        OpKind::DelSa(_) | OpKind::DelPolicy(_) if nack.kind() == ErrorKind::NotFound => {
            return Ok(())
        }
        OpKind::AddSa(k, s, _) | OpKind::UpdateSa(k, s) => {
            let algs: Vec<&str> = match &s.alg {
                Algorithm::Aead { name, .. } => vec![name],
                Algorithm::EncAuth {
                    enc_name,
                    auth_name,
                    ..
                } => vec![enc_name, auth_name],
            };
            if let Some(c) = error::classify_sa_nack(&nack, k.dst.is_ipv6(), &algs) {
                return Err(KernelError::Classified(c));
            }
        }
        _ => {}
    }
    if nack.kind() == ErrorKind::Permission {
        return Err(KernelError::Classified(error::ErrorKindText {
            kind: ErrorKind::Permission,
            text: format!("needs CAP_NET_ADMIN in this network namespace ({nack})"),
        }));
    }
    Err(KernelError::Nack(nack))
}

#[cfg(test)]
mod roundtrip_tests;
