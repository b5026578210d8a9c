//! XFRM netlink objects → agent::model, normalised so that reading back what we installed
//! compares equal to what we wanted, and classified by ownership.
//!
//! Normalisation: kernel-chosen or unset fields are dropped (policy index, lifetimes, the
//! template's share/algorithm masks and transport-mode addresses, SA counters and ESN replay
//! state such as bmp_len and sequence numbers).

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::ParseableParametrized;
use netlink_packet_xfrm as x;
use netlink_packet_xfrm::{policy, state, XfrmAttrs, XfrmMessage};
use policy_schema::Ownership;

use crate::model::{
    Algorithm, Dir, Encap, Level, Lifetime, Mark, Mode, ObservedSa, PolicyAction, PolicyKey,
    PolicySpec, PortMatch, SaKey, SaSpec, SaStats, Selector, Template, IPPROTO_ESP,
};
use crate::secret::Secret;

/// What an object read from the kernel is to us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<K, S> {
    /// Ours by the ownership ranges.
    Owned(K, S),
    /// Someone else's; only its key is kept, so we never write over it.
    Foreign(K),
    /// Not comparable with anything we create (another protocol, a larval SA, a sub policy).
    Skip,
}

impl<K: Ord, S> Decoded<K, S> {
    /// File the object: owned ones with their value, foreign ones by key.
    pub fn file_into(
        self,
        owned: &mut std::collections::BTreeMap<K, S>,
        foreign: &mut std::collections::BTreeSet<K>,
    ) {
        match self {
            Decoded::Owned(k, s) => {
                owned.insert(k, s);
            }
            Decoded::Foreign(k) => {
                foreign.insert(k);
            }
            Decoded::Skip => {}
        }
    }
}

/// Parse the body of an XFRM message of type `ty`; what does not parse is an error, never
/// a panic. netlink-packet-xfrm 0.5 slices fixed-size headers without checking the length
/// (a DELPOLICY body shorter than its 64-byte id panics; found by fuzzing), so its panics
/// are caught here: a malformed message must not take the daemon down.
pub fn message(ty: u16, payload: &[u8]) -> Result<XfrmMessage, String> {
    match std::panic::catch_unwind(|| XfrmMessage::parse_with_param(payload, ty)) {
        Ok(parsed) => parsed.map_err(|e| e.to_string()),
        Err(_) => Err(format!("malformed message of {} bytes", payload.len())),
    }
}

fn addr(a: &x::Address, fam: u16) -> Option<IpAddr> {
    match fam {
        x::AF_INET => Some(IpAddr::V4(a.to_ipv4())),
        x::AF_INET6 => Some(IpAddr::V6(a.to_ipv6())),
        _ => None,
    }
}

/// A selector; an unset family (0) takes `fallback` (the SA's own family).
pub fn selector(s: &x::Selector, fallback: u16) -> Option<Selector> {
    let fam = if s.family == 0 { fallback } else { s.family };
    let src = IpNet::new(addr(&s.saddr, fam)?, s.prefixlen_s).ok()?;
    let dst = IpNet::new(addr(&s.daddr, fam)?, s.prefixlen_d).ok()?;
    Some(Selector {
        src,
        dst,
        proto: s.proto,
        sport: PortMatch {
            port: s.sport,
            mask: s.sport_mask,
        },
        dport: PortMatch {
            port: s.dport,
            mask: s.dport_mask,
        },
    })
}

fn mode(m: u8) -> Option<Mode> {
    match m {
        x::XFRM_MODE_TRANSPORT => Some(Mode::Transport),
        x::XFRM_MODE_TUNNEL => Some(Mode::Tunnel),
        _ => None,
    }
}

fn in_range(v: u32, r: (u32, u32)) -> bool {
    r.0 <= v && v <= r.1
}

/// A template as we would have written it; None when it is not an ESP template of ours.
fn template(t: &x::UserTemplate) -> Option<Template> {
    if t.id.proto != IPPROTO_ESP || t.id.spi != 0 {
        return None;
    }
    let mode = mode(t.mode)?;
    let tunnel = match mode {
        Mode::Tunnel => Some((addr(&t.saddr, t.family)?, addr(&t.id.daddr, t.family)?)),
        Mode::Transport => None,
    };
    Some(Template {
        mode,
        reqid: t.reqid,
        level: if t.optional != 0 {
            Level::Use
        } else {
            Level::Required
        },
        tunnel,
    })
}

/// A policy's mark (XFRMA_MARK; 0/0 is none). The first one counts, for dumps and events
/// alike, so both name a policy with several by the same key.
pub fn mark(nlas: &[XfrmAttrs]) -> Option<Mark> {
    nlas.iter().find_map(|a| match a {
        XfrmAttrs::Mark(m) if m.value != 0 || m.mask != 0 => Some(Mark {
            value: m.value,
            mask: m.mask,
        }),
        _ => None,
    })
}

/// A dumped policy (XFRM_MSG_NEWPOLICY).
pub fn policy(m: &policy::ModifyMessage, own: &Ownership) -> Decoded<PolicyKey, PolicySpec> {
    let info = &m.user_policy_info;
    let mark = mark(&m.nlas);
    let mut tmpls: &[x::UserTemplate] = &[];
    for a in &m.nlas {
        match a {
            XfrmAttrs::Template(ts) => tmpls = ts,
            // Sub policies and policies bound to an xfrm interface are other objects
            // than the main-type, if_id 0 policies we write (their identity differs).
            XfrmAttrs::PolicyType(t) if t.ptype != x::XFRM_POLICY_TYPE_MAIN => {
                return Decoded::Skip
            }
            XfrmAttrs::IfId(id) if *id != 0 => return Decoded::Skip,
            _ => {}
        }
    }
    let dir = match info.direction {
        x::XFRM_POLICY_IN => Dir::In,
        x::XFRM_POLICY_OUT => Dir::Out,
        x::XFRM_POLICY_FWD => Dir::Fwd,
        _ => return Decoded::Skip, // per-socket directions never show in a dump
    };
    let Some(sel) = selector(&info.selector, 0) else {
        return Decoded::Skip;
    };
    let key = PolicyKey { dir, sel, mark };
    if !in_range(info.priority, own.priority) {
        return Decoded::Foreign(key);
    }
    let action = if info.action == x::XFRM_POLICY_BLOCK {
        PolicyAction::Block
    } else if tmpls.is_empty() {
        PolicyAction::Allow
    } else {
        let ts: Option<Vec<Template>> = tmpls.iter().map(template).collect();
        match ts {
            Some(ts) if ts.iter().all(|t| in_range(t.reqid, own.reqid)) => {
                PolicyAction::Protect(ts.into())
            }
            _ => return Decoded::Foreign(key),
        }
    };
    Decoded::Owned(
        key,
        PolicySpec {
            priority: info.priority,
            action,
        },
    )
}

fn c_name(b: &[u8]) -> String {
    let end = b.iter().position(|c| *c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

fn key_bytes(key: &[u8], bits: u32) -> Secret {
    Secret::new(key[..(bits as usize / 8).min(key.len())].to_vec())
}

/// The SA's transform; None when it has none we could have set (e.g. null encryption).
fn algorithm(nlas: &[XfrmAttrs]) -> Option<Algorithm> {
    let (mut crypt, mut auth) = (None, None);
    for a in nlas {
        match a {
            XfrmAttrs::EncryptionAlgAead(a) => {
                return Some(Algorithm::Aead {
                    name: c_name(&a.alg_name).into(),
                    key: key_bytes(&a.alg_key, a.alg_key_len),
                    icv_bits: a.alg_icv_len,
                })
            }
            XfrmAttrs::EncryptionAlg(a) => crypt = Some(a),
            XfrmAttrs::AuthenticationAlgTrunc(a) => auth = Some(a),
            _ => {}
        }
    }
    let (c, a) = (crypt?, auth?);
    Some(Algorithm::EncAuth {
        enc_name: c_name(&c.alg_name).into(),
        enc_key: key_bytes(&c.alg_key, c.alg_key_len),
        auth_name: c_name(&a.alg_name).into(),
        auth_key: key_bytes(&a.alg_key, a.alg_key_len),
        trunc_bits: a.alg_trunc_len,
    })
}

/// A dumped SA (XFRM_MSG_NEWSA). Larval SAs (SPI 0, created by the kernel on acquire) and
/// other protocols are skipped: they are never drift and never touched.
pub fn sa(m: &state::ModifyMessage, own: &Ownership) -> Decoded<SaKey, ObservedSa> {
    let info = &m.user_sa_info;
    if info.id.proto != IPPROTO_ESP || info.id.spi == 0 {
        return Decoded::Skip;
    }
    let Some(dst) = addr(&info.id.daddr, info.family) else {
        return Decoded::Skip;
    };
    let key = SaKey {
        dst,
        spi: info.id.spi,
    };
    if !in_range(info.reqid, own.reqid) || !in_range(info.id.spi, own.spi) {
        return Decoded::Foreign(key);
    }
    match owned_sa(m) {
        Some(o) => Decoded::Owned(key, o),
        // In our ranges but not something we could have written: never touch it.
        None => Decoded::Foreign(key),
    }
}

fn owned_sa(m: &state::ModifyMessage) -> Option<ObservedSa> {
    let info = &m.user_sa_info;
    let esn = info.flags & x::XFRM_STATE_ESN != 0;
    let mut replay_window = u32::from(info.replay_window);
    let mut encap = None;
    let mut last_used = 0;
    for a in &m.nlas {
        match a {
            // Also without ESN: a window over 32 packets is written there (encode.rs).
            XfrmAttrs::ReplayStateEsn(r) => replay_window = r.replay_window,
            XfrmAttrs::EncapsulationTemplate(e) if e.encap_type == x::UDP_ENCAP_ESPINUDP => {
                encap = Some(Encap {
                    sport: e.encap_sport,
                    dport: e.encap_dport,
                })
            }
            XfrmAttrs::LastUsed(t) => last_used = *t,
            _ => {}
        }
    }
    let spec = SaSpec {
        src: addr(&info.saddr, info.family)?,
        reqid: info.reqid,
        mode: mode(info.mode)?,
        sel: selector(&info.selector, info.family)?,
        alg: algorithm(&m.nlas)?,
        replay_window,
        esn,
        encap,
        lifetime: Lifetime {
            soft_secs: info.lifetime_cfg.soft_add_expires_seconds,
            hard_secs: info.lifetime_cfg.hard_add_expires_seconds,
        },
    };
    let cur = &info.lifetime_cur;
    let stats = SaStats {
        bytes: cur.bytes,
        packets: cur.packets,
        add_time: cur.add_time,
        use_time: if last_used != 0 {
            last_used
        } else {
            cur.use_time
        },
        replay_drops: info.stats.replay,
        integrity_failures: info.stats.integrity_failed,
    };
    Some(ObservedSa { spec, stats })
}
