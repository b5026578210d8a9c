//! agent::model → XFRM netlink requests (netlink-packet-xfrm structures).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use netlink_packet_core::NetlinkSerializable;
use netlink_packet_xfrm as x;
use netlink_packet_xfrm::{policy, state, XfrmAttrs, XfrmMessage};

use super::socket::Request;
use crate::model::{
    Algorithm, Dir, Level, Mode, OpKind, PolicyAction, PolicyKey, PolicySpec, SaKey, SaSpec,
    Selector, IPPROTO_ESP,
};

/// The request for one op.
pub fn op_request(op: &OpKind) -> Request {
    let msg = match op {
        OpKind::AddSa(k, s, seq) => XfrmMessage::AddSa(sa_message(k, s, *seq)),
        OpKind::UpdateSa(k, s) => XfrmMessage::UpdateSa(sa_message(k, s, 0)),
        OpKind::DelSa(k) => XfrmMessage::DeleteSa(sa_id(k)),
        OpKind::AddPolicy(k, s) => XfrmMessage::AddPolicy(policy_message(k, s)),
        OpKind::UpdatePolicy(k, s) => XfrmMessage::UpdatePolicy(policy_message(k, s)),
        OpKind::DelPolicy(k) => XfrmMessage::DeletePolicy(policy_id(k)),
    };
    to_request(&msg, 0)
}

/// Serialize a message's payload (the netlink header is added by the socket).
pub fn to_request(msg: &XfrmMessage, flags: u16) -> Request {
    let mut payload = vec![0u8; msg.buffer_len()];
    msg.serialize(&mut payload);
    Request {
        ty: msg.message_type(),
        flags,
        payload,
    }
}

pub(crate) fn family(a: &IpAddr) -> u16 {
    match a {
        IpAddr::V4(_) => x::AF_INET,
        IpAddr::V6(_) => x::AF_INET6,
    }
}

fn unspecified(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

pub(crate) fn mode_num(m: Mode) -> u8 {
    match m {
        Mode::Transport => x::XFRM_MODE_TRANSPORT,
        Mode::Tunnel => x::XFRM_MODE_TUNNEL,
    }
}

pub(crate) fn dir_num(d: Dir) -> u8 {
    match d {
        Dir::In => x::XFRM_POLICY_IN,
        Dir::Out => x::XFRM_POLICY_OUT,
        Dir::Fwd => x::XFRM_POLICY_FWD,
    }
}

/// An xfrm_selector. Ports go out in network byte order (the crate converts).
pub fn selector(s: &Selector) -> x::Selector {
    x::Selector {
        daddr: x::Address::from_ip(&s.dst.addr()),
        saddr: x::Address::from_ip(&s.src.addr()),
        dport: s.dport.port,
        dport_mask: s.dport.mask,
        sport: s.sport.port,
        sport_mask: s.sport.mask,
        family: family(&s.src.addr()),
        prefixlen_d: s.dst.prefix_len(),
        prefixlen_s: s.src.prefix_len(),
        proto: s.proto,
        ifindex: 0,
        user: 0,
    }
}

fn mark_attr(k: &PolicyKey) -> Vec<XfrmAttrs> {
    k.mark
        .map(|m| {
            XfrmAttrs::Mark(x::Mark {
                value: m.value,
                mask: m.mask,
            })
        })
        .into_iter()
        .collect()
}

fn template(t: &crate::model::Template, v6: bool) -> x::UserTemplate {
    let (src, dst) = t.tunnel.unwrap_or((unspecified(v6), unspecified(v6)));
    x::UserTemplate {
        id: x::Id {
            daddr: x::Address::from_ip(&dst),
            spi: 0,
            proto: IPPROTO_ESP,
        },
        family: family(&dst),
        saddr: x::Address::from_ip(&src),
        reqid: t.reqid,
        mode: mode_num(t.mode),
        share: x::XFRM_SHARE_ANY,
        optional: u8::from(t.level == Level::Use),
        // Any algorithm, as iproute2 does: the SA decides.
        aalgos: u32::MAX,
        ealgos: u32::MAX,
        calgos: u32::MAX,
    }
}

/// XFRM_MSG_NEWPOLICY / UPDPOLICY body.
pub fn policy_message(k: &PolicyKey, s: &PolicySpec) -> policy::ModifyMessage {
    let (action, tmpls) = match &s.action {
        PolicyAction::Allow => (x::XFRM_POLICY_ALLOW, vec![]),
        PolicyAction::Block => (x::XFRM_POLICY_BLOCK, vec![]),
        PolicyAction::Protect(ts) => (
            x::XFRM_POLICY_ALLOW,
            ts.iter().map(|t| template(t, k.sel.is_v6())).collect(),
        ),
    };
    let mut nlas = mark_attr(k);
    if !tmpls.is_empty() {
        nlas.push(XfrmAttrs::Template(tmpls));
    }
    policy::ModifyMessage {
        user_policy_info: x::UserPolicyInfo {
            selector: selector(&k.sel),
            lifetime_cfg: x::LifetimeConfig::default(),
            lifetime_cur: x::Lifetime::default(),
            priority: s.priority,
            index: 0,
            direction: dir_num(k.dir),
            action,
            flags: 0,
            share: x::XFRM_SHARE_ANY,
        },
        nlas,
    }
}

/// XFRM_MSG_DELPOLICY body: found by (dir, selector, mark).
pub fn policy_id(k: &PolicyKey) -> policy::DelGetMessage {
    policy::DelGetMessage {
        user_policy_id: x::UserPolicyId {
            selector: selector(&k.sel),
            index: 0,
            direction: dir_num(k.dir),
        },
        nlas: mark_attr(k),
    }
}

/// XFRM_MSG_DELSA body: found by (daddr, spi, proto).
pub fn sa_id(k: &SaKey) -> state::DelGetMessage {
    state::DelGetMessage {
        user_sa_id: x::UserSaId {
            daddr: x::Address::from_ip(&k.dst),
            spi: k.spi,
            family: family(&k.dst),
            proto: IPPROTO_ESP,
        },
        nlas: vec![],
    }
}

fn name_bytes<const N: usize>(name: &str) -> [u8; N] {
    let mut out = [0u8; N];
    let n = name.len().min(N - 1);
    out[..n].copy_from_slice(&name.as_bytes()[..n]);
    out
}

fn alg_attrs(a: &Algorithm) -> Vec<XfrmAttrs> {
    match a {
        Algorithm::Aead {
            name,
            key,
            icv_bits,
        } => vec![XfrmAttrs::EncryptionAlgAead(x::AlgAead {
            alg_name: name_bytes(name),
            alg_key_len: (key.len() * 8) as u32,
            alg_icv_len: *icv_bits,
            alg_key: key.expose().to_vec(),
        })],
        Algorithm::EncAuth {
            enc_name,
            enc_key,
            auth_name,
            auth_key,
            trunc_bits,
        } => vec![
            XfrmAttrs::EncryptionAlg(x::Alg {
                alg_name: name_bytes(enc_name),
                alg_key_len: (enc_key.len() * 8) as u32,
                alg_key: enc_key.expose().to_vec(),
            }),
            XfrmAttrs::AuthenticationAlgTrunc(x::AlgAuth {
                alg_name: name_bytes(auth_name),
                alg_key_len: (auth_key.len() * 8) as u32,
                alg_trunc_len: *trunc_bits,
                alg_key: auth_key.expose().to_vec(),
            }),
        ],
    }
}

/// Whether the SA's replay window goes in XFRMA_REPLAY_ESN_VAL (a bitmap of any size):
/// with ESN, and without it for a window over 32 packets, the most the legacy
/// `xfrm_usersa_info.replay_window` gives (the kernel caps it at its 32-bit bitmap in
/// copy_from_user_state, so a larger one would be dumped as 32 and never match).
fn replay_in_bitmap(s: &SaSpec) -> bool {
    s.esn || s.replay_window > 32
}

/// XFRM_MSG_NEWSA / UPDSA body. `initial_seq` is the outbound ESN sequence to start from.
pub fn sa_message(k: &SaKey, s: &SaSpec, initial_seq: u64) -> state::ModifyMessage {
    let mut nlas = alg_attrs(&s.alg);
    let bmp = replay_in_bitmap(s);
    if bmp {
        // The bitmap must hold the window: bmp_len words of 32 bits (xfrm_init_replay).
        let bmp_len = s.replay_window.div_ceil(32);
        nlas.push(XfrmAttrs::ReplayStateEsn(x::ReplayEsn {
            bmp_len,
            oseq: initial_seq as u32,
            seq: 0,
            oseq_hi: (initial_seq >> 32) as u32,
            seq_hi: 0,
            replay_window: s.replay_window,
            bmp: vec![0; bmp_len as usize],
        }));
    }
    if let Some(e) = s.encap {
        nlas.push(XfrmAttrs::EncapsulationTemplate(x::EncapTmpl {
            encap_type: x::UDP_ENCAP_ESPINUDP,
            encap_sport: e.sport,
            encap_dport: e.dport,
            encap_oa: x::Address::default(),
        }));
    }
    let lifetime_cfg = x::LifetimeConfig {
        soft_add_expires_seconds: s.lifetime.soft_secs,
        hard_add_expires_seconds: s.lifetime.hard_secs,
        ..x::LifetimeConfig::default()
    };
    state::ModifyMessage {
        user_sa_info: x::UserSaInfo {
            selector: selector(&s.sel),
            id: x::Id {
                daddr: x::Address::from_ip(&k.dst),
                spi: k.spi,
                proto: IPPROTO_ESP,
            },
            saddr: x::Address::from_ip(&s.src),
            lifetime_cfg,
            lifetime_cur: x::Lifetime::default(),
            stats: x::Stats::default(),
            seq: 0,
            reqid: s.reqid,
            family: family(&k.dst),
            mode: mode_num(s.mode),
            // With ESN the window lives in XFRMA_REPLAY_ESN_VAL and this must be 0
            // (verify_replay() in xfrm_user.c).
            replay_window: if bmp { 0 } else { s.replay_window as u8 },
            flags: if s.esn { x::XFRM_STATE_ESN } else { 0 },
        },
        nlas,
    }
}
