//! A negotiated Child SA as the agent's desired XFRM states: one inbound and one outbound
//! ESP SA, owned like the static ones (reqid of the rule's template), selectors pinned to
//! the pair's two addresses.

use std::net::IpAddr;

use ike::codec::TrafficSelector;
use ike::crypto::{Cipher, DirectionKeys};
use ike::sa::ChildSa;
use policy_schema::Mode;

use super::Terms;
use crate::model::{
    Algorithm, DesiredSa, Encap, Lifetime, PortMatch, SaDir, SaKey, SaMeta, SaSpec, Selector,
    NAT_T_PORT,
};
use crate::plan::host_net as host;
use crate::plan::mirror;
use crate::secret::Secret;

/// The kernel algorithm for `cipher` with one direction's keys. GCM keys already carry
/// their 4-byte salt last, as `rfc4106(gcm(aes))` wants (RFC 4106 §8.1).
pub fn algorithm(cipher: Cipher, keys: &DirectionKeys) -> Algorithm {
    let copy = |s: &ike::crypto::Secret| Secret::new(s.expose().to_vec());
    match cipher {
        Cipher::AesGcm16 { .. } => Algorithm::Aead {
            name: "rfc4106(gcm(aes))".into(),
            key: copy(&keys.enc),
            icv_bits: 128,
        },
        Cipher::AesCbcHmacSha256 { .. } => Algorithm::EncAuth {
            enc_name: "cbc(aes)".into(),
            enc_key: copy(&keys.enc),
            auth_name: "hmac(sha256)".into(),
            auth_key: copy(&keys.integ),
            // HMAC-SHA2-256-128 (RFC 4868).
            trunc_bits: 128,
        },
    }
}

/// The suite's name for status (`aes-gcm-16-128`, `aes-cbc-256+hmac-sha256-128`).
pub fn suite_name(cipher: Cipher) -> String {
    match cipher {
        Cipher::AesGcm16 { bits } => format!("aes-gcm-16-{bits}"),
        Cipher::AesCbcHmacSha256 { bits } => format!("aes-cbc-{bits}+hmac-sha256-128"),
    }
}

/// The selector for local→remote traffic: the two hosts, and the protocol when both sides
/// narrowed to one (the ike crate narrows to the hosts, every protocol).
fn outbound_selector(local: IpAddr, remote: IpAddr, child: &ChildSa) -> Selector {
    let mut sel = Selector::between(host(local), host(remote));
    if let ([l], [r]) = (child.local_ts.as_slice(), child.remote_ts.as_slice()) {
        if l.protocol != 0 && l.protocol == r.protocol {
            sel.proto = l.protocol;
            sel.sport = single_port(l);
            sel.dport = single_port(r);
        }
    }
    sel
}

fn single_port(ts: &TrafficSelector) -> PortMatch {
    if ts.start_port == ts.end_port {
        PortMatch::exact(ts.start_port)
    } else {
        PortMatch::ANY
    }
}

/// One direction of a Child SA: its kernel key and desired state.
pub fn state(
    child: &ChildSa,
    dir: SaDir,
    terms: &Terms,
    peer: &str,
    generation: u64,
) -> (SaKey, DesiredSa) {
    let (local, remote) = (child.local.ip(), child.remote.ip());
    let out_sel = outbound_selector(local, remote, child);
    let (src, dst, spi, sel, keys) = match dir {
        SaDir::Out => (local, remote, child.spi_out, out_sel, &child.keys_out),
        SaDir::In => (
            remote,
            local,
            child.spi_in,
            mirror(&out_sel),
            &child.keys_in,
        ),
    };
    // ESP in UDP from and to the ports IKE ended on (4500 after NAT detection, RFC 3948).
    let encap = child.encap.then(|| {
        let (ours, theirs) = (
            port_or_nat_t(child.local.port()),
            port_or_nat_t(child.remote.port()),
        );
        match dir {
            SaDir::Out => Encap {
                sport: ours,
                dport: theirs,
            },
            SaDir::In => Encap {
                sport: theirs,
                dport: ours,
            },
        }
    });
    let spec = SaSpec {
        src,
        reqid: terms.reqid,
        mode: Mode::Transport,
        sel,
        alg: algorithm(child.cipher, keys),
        replay_window: terms.replay_window,
        // The ike crate proposes no extended sequence numbers.
        esn: false,
        encap,
        lifetime: terms.lifetime,
    };
    let meta = SaMeta {
        peer: peer.to_string(),
        dir,
        epoch: generation,
        initial_seq: 0,
    };
    (SaKey { dst, spi }, DesiredSa { spec, meta })
}

/// IKE on port 500 with encapsulation forced still sends ESP in UDP to 4500.
fn port_or_nat_t(port: u16) -> u16 {
    if port == 500 {
        NAT_T_PORT
    } else {
        port
    }
}

/// Lifetimes for negotiated SAs: a safety net well past the planned rekey, so that only
/// an agent that stopped rekeying lets the kernel expire them (traffic then drops).
pub fn lifetime(rekey_after: std::time::Duration) -> Lifetime {
    let secs = rekey_after.as_secs().max(60);
    Lifetime {
        soft_secs: secs * 2,
        hard_secs: secs * 3,
    }
}
