//! The kernel side: observe the SPD and SAD over XFRM netlink, apply ops in batches, read
//! this namespace's addresses, enter a named namespace.
//!
//! Everything that talks to the kernel lives here; `plan` never imports it.

pub mod addrs;
pub mod allocspi;
pub mod announce;
pub mod decode;
pub mod encap;
pub mod encode;
pub mod error;
pub mod events;
pub mod ike_sockets;
pub mod larval;
pub mod netns;
mod pktinfo;
pub mod socket;

use std::collections::{BTreeMap, BTreeSet};

use netlink_packet_xfrm::{XfrmMessage, XFRM_MSG_GETPOLICY, XFRM_MSG_GETSA};
use netlink_sys::constants::NETLINK_XFRM;
use policy_schema::Ownership;

use crate::model::{Algorithm, Observed, Op, OpKind, PolicyKey, SaKey};
pub use decode::Decoded;
pub use error::{ErrorKind, KernelError, Nack};
pub use socket::NlSocket;

/// Open an XFRM netlink socket in the current network namespace.
pub fn open() -> Result<NlSocket, KernelError> {
    NlSocket::open(NETLINK_XFRM)
}

fn parse(m: &socket::RawMsg<'_>) -> Option<XfrmMessage> {
    match decode::message(m.ty, m.payload) {
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

/// Read the objects under `policies` and `states` one by one (batched GETs): what a dump
/// would show of those keys, at the cost of a handful of messages instead of the whole
/// SPD and SAD. A key the kernel does not hold is absent.
pub fn observe_keys(
    sock: &mut NlSocket,
    own: &Ownership,
    policies: &BTreeSet<PolicyKey>,
    states: &BTreeSet<SaKey>,
) -> Result<Observed, KernelError> {
    let reqs: Vec<_> = (policies.iter())
        .map(|k| XfrmMessage::GetPolicy(encode::policy_id(k)))
        .chain(states.iter().map(|k| XfrmMessage::GetSa(encode::sa_id(k))))
        .map(|m| encode::to_request(&m, 0))
        .collect();
    let mut obs = Observed::default();
    let acks = sock.transact_with(&reqs, |_, m| match parse(m) {
        Some(XfrmMessage::AddPolicy(p)) => {
            decode::policy(&p, own).file_into(&mut obs.policies, &mut obs.foreign_policies)
        }
        Some(XfrmMessage::AddSa(s)) => {
            decode::sa(&s, own).file_into(&mut obs.states, &mut obs.foreign_states)
        }
        _ => {}
    })?;
    for nack in acks.into_iter().filter_map(Result::err) {
        if nack.kind() != ErrorKind::NotFound {
            return Err(KernelError::Nack(nack));
        }
    }
    Ok(obs)
}

fn dump_policies(
    sock: &mut NlSocket,
    own: &Ownership,
    obs: &mut Observed,
) -> Result<(), KernelError> {
    let decode = |x| match x {
        XfrmMessage::AddPolicy(p) => decode::policy(&p, own),
        _ => Decoded::Skip,
    };
    (obs.policies, obs.foreign_policies) = dump_objects(sock, XFRM_MSG_GETPOLICY, decode)?;
    Ok(())
}

fn dump_states(
    sock: &mut NlSocket,
    own: &Ownership,
    obs: &mut Observed,
) -> Result<(), KernelError> {
    let decode = |x| match x {
        XfrmMessage::AddSa(s) => decode::sa(&s, own),
        _ => Decoded::Skip,
    };
    (obs.states, obs.foreign_states) = dump_objects(sock, XFRM_MSG_GETSA, decode)?;
    Ok(())
}

/// One dump, split into owned objects and foreign keys. When the kernel restarts an
/// interrupted dump, what the first attempt saw is dropped: an object deleted in between
/// must not look present (it would never be restored).
fn dump_objects<K: Ord, S>(
    sock: &mut NlSocket,
    msg_type: u16,
    decode: impl Fn(XfrmMessage) -> Decoded<K, S>,
) -> Result<(BTreeMap<K, S>, BTreeSet<K>), KernelError> {
    let acc = std::cell::RefCell::new((BTreeMap::new(), BTreeSet::new()));
    sock.dump(
        msg_type,
        &[],
        |m| {
            if let Some(d) = parse(m).map(&decode) {
                let (owned, foreign) = &mut *acc.borrow_mut();
                d.file_into(owned, foreign);
            }
            Ok(())
        },
        || *acc.borrow_mut() = (BTreeMap::new(), BTreeSet::new()),
    )?;
    Ok(acc.into_inner())
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
