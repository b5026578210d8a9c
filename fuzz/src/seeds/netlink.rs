//! Netlink receive buffers as the kernel sends them: dumped and notified policies and SAs
//! (the agent's own encoder writes their bodies, as the kernel echoes a request's body in
//! its notification), deletes, expire and acquire events, flushes, address messages and
//! error acks with an extended-ack text.

use std::sync::Arc;

use agent::kernel::encode;
use agent::model::*;
use agent::secret::Secret;
use netlink_packet_xfrm as x;
use netlink_packet_xfrm::{XfrmAttrs, XfrmMessage};

use super::Seed;

const REQID: u32 = 0x7a00_0001;
const PRIORITY: u32 = 0x0001_0100;
const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const NLMSG_ERROR: u16 = 2;
/// NLM_F_CAPPED | NLM_F_ACK_TLVS: the ack carries only the request's header, then TLVs.
const CAPPED_WITH_TLVS: u16 = 0x100 | 0x200;

/// One netlink message: header, then the body padded to 4 bytes.
fn frame(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let len = 16 + body.len();
    let mut v = Vec::with_capacity(len + 3);
    v.extend_from_slice(&(len as u32).to_ne_bytes());
    v.extend_from_slice(&ty.to_ne_bytes());
    v.extend_from_slice(&flags.to_ne_bytes());
    v.extend_from_slice(&[0; 8]); // seq, pid
    v.extend_from_slice(body);
    v.resize(len.next_multiple_of(4), 0);
    v
}

fn xfrm(m: &XfrmMessage) -> Vec<u8> {
    let r = encode::to_request(m, 0);
    frame(r.ty, 0, &r.payload)
}

fn sel(src: &str, dst: &str) -> Selector {
    Selector::between(src.parse().expect("prefix"), dst.parse().expect("prefix"))
}

fn policies() -> Vec<(PolicyKey, PolicySpec)> {
    let mut tcp = sel("10.0.0.0/24", "10.1.0.0/16");
    tcp.proto = 6;
    tcp.dport = PortMatch::exact(22);
    let tunnel = Template {
        mode: Mode::Tunnel,
        reqid: REQID,
        level: Level::Required,
        tunnel: Some((
            "fd00::1".parse().expect("ip"),
            "fd00::2".parse().expect("ip"),
        )),
    };
    let transport = Template {
        mode: Mode::Transport,
        reqid: REQID,
        level: Level::Use,
        tunnel: None,
    };
    let spec = |action| PolicySpec {
        priority: PRIORITY,
        action,
    };
    let key = |dir, sel, mark| PolicyKey { dir, sel, mark };
    vec![
        (key(Dir::Out, tcp, None), spec(PolicyAction::Allow)),
        (
            key(
                Dir::In,
                sel("::/0", "fd00::1/128"),
                Some(Mark { value: 1, mask: 1 }),
            ),
            spec(PolicyAction::Protect(Arc::from([tunnel]))),
        ),
        (
            key(Dir::Fwd, sel("10.2.0.0/16", "10.3.0.0/16"), None),
            spec(PolicyAction::Protect(Arc::from([transport]))),
        ),
        (
            key(Dir::Out, sel("0.0.0.0/0", "10.9.0.0/24"), None),
            spec(PolicyAction::Block),
        ),
    ]
}

fn sas() -> Vec<(SaKey, SaSpec)> {
    let aead = Algorithm::Aead {
        name: "rfc4106(gcm(aes))".into(),
        key: Secret::new(vec![0x11; 20]),
        icv_bits: 128,
    };
    let enc_auth = Algorithm::EncAuth {
        enc_name: "cbc(aes)".into(),
        enc_key: Secret::new(vec![0x22; 16]),
        auth_name: "hmac(sha256)".into(),
        auth_key: Secret::new(vec![0x33; 32]),
        trunc_bits: 128,
    };
    let spec = |src: &str, sel, alg, esn, encap| SaSpec {
        src: src.parse().expect("ip"),
        reqid: REQID,
        mode: Mode::Transport,
        sel,
        alg,
        replay_window: if esn { 1024 } else { 32 },
        esn,
        encap,
        lifetime: Lifetime {
            soft_secs: 3000,
            hard_secs: 3600,
        },
    };
    let key = |dst: &str, spi| SaKey {
        dst: dst.parse().expect("ip"),
        spi,
    };
    let encap = Some(Encap {
        sport: 4500,
        dport: 4500,
    });
    vec![
        (
            key("10.0.0.2", 0x4000_0001),
            spec(
                "10.0.0.1",
                sel("10.0.0.1/32", "10.0.0.2/32"),
                aead,
                false,
                encap,
            ),
        ),
        (
            key("fd00::2", 0x4000_0002),
            spec(
                "fd00::1",
                sel("fd00::1/128", "fd00::2/128"),
                enc_auth,
                true,
                None,
            ),
        ),
    ]
}

/// Policies and SAs as dumped or notified, and their deletes.
fn objects() -> Vec<Seed> {
    let mut out = Vec::new();
    for (i, (k, s)) in policies().into_iter().enumerate() {
        let add = encode::policy_message(&k, &s);
        out.push((
            format!("policy-{i}"),
            xfrm(&XfrmMessage::AddPolicy(add.clone())),
        ));
        out.push((
            format!("policy-upd-{i}"),
            xfrm(&XfrmMessage::UpdatePolicy(add.clone())),
        ));
        out.push((
            format!("policy-del-{i}"),
            xfrm(&XfrmMessage::DeletePolicy(encode::policy_id(&k))),
        ));
        // Deleted by index: a zeroed selector, the policy itself in XFRMA_POLICY.
        let mut by_index = encode::policy_id(&k);
        by_index.user_policy_id.selector = x::Selector::default();
        by_index.user_policy_id.index = 42;
        by_index
            .nlas
            .push(XfrmAttrs::PolicyInfo(add.user_policy_info));
        out.push((
            format!("policy-del-index-{i}"),
            xfrm(&XfrmMessage::DeletePolicy(by_index)),
        ));
    }
    for (i, (k, s)) in sas().into_iter().enumerate() {
        let add = encode::sa_message(&k, &s, 1 << 33);
        out.push((format!("sa-{i}"), xfrm(&XfrmMessage::AddSa(add.clone()))));
        out.push((
            format!("sa-del-{i}"),
            xfrm(&XfrmMessage::DeleteSa(encode::sa_id(&k))),
        ));
        let expire = x::ExpireMessage {
            expire: x::UserExpire {
                state: add.user_sa_info,
                hard: i as u8,
            },
        };
        out.push((format!("expire-{i}"), xfrm(&XfrmMessage::Expire(expire))));
    }
    out
}

/// An acquire for traffic that hit a protecting policy without an SA (v4 and v6).
fn acquires() -> Vec<Seed> {
    policies()
        .into_iter()
        .take(2)
        .enumerate()
        .map(|(i, (k, s))| {
            let info = encode::policy_message(&k, &s).user_policy_info;
            let acquire = x::AcquireMessage {
                acquire: x::UserAcquire {
                    id: x::Id {
                        daddr: x::Address::from_ip(&k.sel.dst.addr()),
                        spi: 0,
                        proto: IPPROTO_ESP,
                    },
                    saddr: x::Address::from_ip(&k.sel.src.addr()),
                    selector: info.selector,
                    policy: info,
                    seq: 7,
                    ..Default::default()
                },
                nlas: vec![],
            };
            (format!("acquire-{i}"), xfrm(&XfrmMessage::Acquire(acquire)))
        })
        .collect()
}

/// An ifaddrmsg (family, prefix length, flags, scope, index) and its attributes.
fn addr_msg(ty: u16, family: u8, attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut body = vec![family, 24, 0, 0, 2, 0, 0, 0];
    for (t, v) in attrs {
        body.extend_from_slice(&((4 + v.len()) as u16).to_ne_bytes());
        body.extend_from_slice(&t.to_ne_bytes());
        body.extend_from_slice(v);
        body.resize(body.len().next_multiple_of(4), 0);
    }
    frame(ty, 0, &body)
}

fn addresses() -> Vec<Seed> {
    const IFA_ADDRESS: u16 = 1;
    const IFA_LOCAL: u16 = 2;
    const IFA_FLAGS: u16 = 8;
    let v6: [u8; 16] = "fd00::1"
        .parse::<std::net::Ipv6Addr>()
        .expect("ip")
        .octets();
    let tentative = 0x40u32.to_ne_bytes();
    vec![
        (
            "addr-v4".into(),
            addr_msg(
                RTM_NEWADDR,
                2,
                &[(IFA_ADDRESS, &[10, 0, 0, 2]), (IFA_LOCAL, &[10, 0, 0, 1])],
            ),
        ),
        (
            "addr-v6".into(),
            addr_msg(
                RTM_DELADDR,
                10,
                &[(IFA_ADDRESS, &v6), (IFA_FLAGS, &tentative)],
            ),
        ),
    ]
}

/// Flushes, an error ack with an extended-ack text, and a dump of several messages.
fn others() -> Vec<Seed> {
    let mut ack = (-22i32).to_ne_bytes().to_vec();
    ack.extend_from_slice(&frame(x::XFRM_MSG_NEWSA, 5, &[])); // the request's header
    let text = b"Invalid algorithm\0";
    ack.extend_from_slice(&((4 + text.len()) as u16).to_ne_bytes());
    ack.extend_from_slice(&1u16.to_ne_bytes()); // NLMSGERR_ATTR_MSG
    ack.extend_from_slice(text);
    let mut dump: Vec<u8> = objects().into_iter().take(3).flat_map(|(_, m)| m).collect();
    dump.extend(frame(3, 2, &0i32.to_ne_bytes())); // NLMSG_DONE, multi
    vec![
        (
            "flush-sa".into(),
            frame(x::XFRM_MSG_FLUSHSA, 0, &[50, 0, 0, 0]),
        ),
        (
            "flush-policy".into(),
            frame(x::XFRM_MSG_FLUSHPOLICY, 0, &[]),
        ),
        (
            "error-ack".into(),
            frame(NLMSG_ERROR, CAPPED_WITH_TLVS, &ack),
        ),
        ("dump".into(), dump),
    ]
}

/// Every netlink seed.
pub fn seeds() -> Vec<Seed> {
    let mut out = objects();
    out.extend(acquires());
    out.extend(addresses());
    out.extend(others());
    out
}
