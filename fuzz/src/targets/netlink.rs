//! Every netlink decoder of the agent on any receive buffer: the framing (`parse_msgs`),
//! error acks (`parse_error`), address messages (`addrs::parse_addr`), multicast events
//! (`decode_event`: policies, SAs, expire, acquire, flushes) and dumped policies and SAs
//! (`decode::policy`, `decode::sa`). Beyond not panicking:
//! - an event and a dump decoding of the same message name the same key;
//! - an owned policy or SA re-encodes (`encode`) and decodes back to the same value, when
//!   it is something the kernel could hand us (short ASCII algorithm names, a replay window
//!   the kernel accepts).

use agent::kernel::decode::{self, Decoded};
use agent::kernel::events::{decode_event, XfrmEvent};
use agent::kernel::socket::{parse_error, parse_msgs, RawMsg};
use agent::kernel::{addrs, encode};
use agent::model::{Algorithm, PolicyKey, PolicySpec, SaKey, SaSpec};
use netlink_packet_xfrm::XfrmMessage;
use policy_schema::Ownership;

/// The largest replay window the kernel accepts (xfrm_user.c: bmp_len at most
/// XFRMA_REPLAY_ESN_MAX / 4 / 8 = 128 words of 32 bits); the encoder is never asked for more.
const MAX_REPLAY_WINDOW: u32 = 4096;
/// AF_INET6 on Linux, as the first byte of an ifaddrmsg.
const AF_INET6: u8 = 10;

/// Decode a receive buffer of netlink messages.
pub fn run(data: &[u8]) {
    let Ok(msgs) = parse_msgs(data) else {
        return;
    };
    for m in &msgs {
        message(m);
    }
}

fn message(m: &RawMsg<'_>) {
    let _ = parse_error(m);
    if let Some(a) = addrs::parse_addr(m) {
        assert_eq!(
            a.is_ipv6(),
            m.payload[0] == AF_INET6,
            "address {a} of another family than its message"
        );
    }
    let event = decode_event(m.ty, m.payload);
    let Ok(msg) = decode::message(m.ty, m.payload) else {
        return;
    };
    let own = Ownership::default();
    match msg {
        XfrmMessage::AddPolicy(p) => {
            let d = decode::policy(&p, &own);
            same_key(&event, policy_key(&d), XfrmEvent::PolicyAdded);
            if let Decoded::Owned(k, s) = d {
                policy_roundtrip(k, s, &own);
            }
        }
        XfrmMessage::AddSa(s) => {
            let d = decode::sa(&s, &own);
            same_key(&event, sa_key(&d), XfrmEvent::SaAdded);
            if let Decoded::Owned(k, o) = d {
                if writable(&o.spec) {
                    sa_roundtrip(k, &o.spec, &own);
                }
            }
        }
        _ => {}
    }
}

fn policy_key<S>(d: &Decoded<PolicyKey, S>) -> Option<PolicyKey> {
    match d {
        Decoded::Owned(k, _) | Decoded::Foreign(k) => Some(*k),
        Decoded::Skip => None,
    }
}

fn sa_key<S>(d: &Decoded<SaKey, S>) -> Option<SaKey> {
    match d {
        Decoded::Owned(k, _) | Decoded::Foreign(k) => Some(*k),
        Decoded::Skip => None,
    }
}

/// A dumped object that the dump decoder files under a key is notified under that key.
fn same_key<K>(event: &Option<XfrmEvent>, key: Option<K>, added: fn(K) -> XfrmEvent) {
    if let Some(k) = key {
        assert_eq!(
            event.as_ref(),
            Some(&added(k)),
            "event and dump decode differently"
        );
    }
}

/// What the kernel could report of an SA: NUL-terminated ASCII algorithm names that fit
/// their 64-byte field, a replay window it accepts.
fn writable(s: &SaSpec) -> bool {
    let name_ok = |n: &str| n.len() < 64 && n.bytes().all(|b| b.is_ascii_graphic());
    let names_ok = match &s.alg {
        Algorithm::Aead { name, .. } => name_ok(name),
        Algorithm::EncAuth {
            enc_name,
            auth_name,
            ..
        } => name_ok(enc_name) && name_ok(auth_name),
    };
    names_ok && s.replay_window <= MAX_REPLAY_WINDOW
}

fn policy_roundtrip(k: PolicyKey, s: PolicySpec, own: &Ownership) {
    let back = encode::to_request(&XfrmMessage::AddPolicy(encode::policy_message(&k, &s)), 0);
    match decode::message(back.ty, &back.payload) {
        Ok(XfrmMessage::AddPolicy(p)) => assert_eq!(
            decode::policy(&p, own),
            Decoded::Owned(k, s),
            "policy does not survive encode and decode"
        ),
        other => panic!("re-encoded policy parses as {other:?}"),
    }
}

fn sa_roundtrip(k: SaKey, spec: &SaSpec, own: &Ownership) {
    let back = encode::to_request(&XfrmMessage::AddSa(encode::sa_message(&k, spec, 0)), 0);
    match decode::message(back.ty, &back.payload) {
        Ok(XfrmMessage::AddSa(s2)) => match decode::sa(&s2, own) {
            Decoded::Owned(k2, o2) => {
                assert_eq!(k2, k);
                assert_eq!(&o2.spec, spec, "SA does not survive encode and decode");
            }
            other => panic!("re-encoded SA decodes as {other:?}"),
        },
        other => panic!("re-encoded SA parses as {other:?}"),
    }
}
