//! A negotiated Child SA as the agent's desired XFRM states: one inbound and one outbound
//! ESP SA, owned like the static ones (reqid of the rule's template). Transport mode:
//! selectors pinned to the pair's two addresses. Tunnel mode: the outer addresses are the
//! two gateways and the selector is the networks behind them, as static tunnel SAs have.

use std::net::IpAddr;

use ike::codec::TrafficSelector;
use ike::crypto::{Cipher, DirectionKeys};
use ike::sa::{ChildSa, Mode as IkeMode};
use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};
use policy_schema::{Family, Mode};

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

/// The selector for local→remote traffic: the two hosts, and the protocol and ports when
/// the Child SA was narrowed to one (a peer admitted by a port rule alone): the kernel then
/// drops decrypted packets outside it (XfrmInStateMismatch).
fn outbound_selector(local: IpAddr, remote: IpAddr, child: &ChildSa) -> Selector {
    if child.mode == IkeMode::Tunnel {
        return tunnel_selector(local, child);
    }
    let mut sel = Selector::between(host(local), host(remote));
    if let ([l], [r]) = (child.local_ts.as_slice(), child.remote_ts.as_slice()) {
        if l.protocol != 0 && l.protocol == r.protocol {
            sel.proto = l.protocol;
            sel.sport = port_match(l);
            sel.dport = port_match(r);
        }
    }
    sel
}

/// A tunnel's selector: one network each side pins it; several leave it open within the
/// outer family, the tunnel endpoints binding the SA (as the compiler's static tunnel SAs).
fn tunnel_selector(local: IpAddr, child: &ChildSa) -> Selector {
    if let ([l], [r]) = (child.local_ts.as_slice(), child.remote_ts.as_slice()) {
        if let (Some(l), Some(r)) = (prefix(l), prefix(r)) {
            if l.addr().is_ipv4() == local.is_ipv4() {
                return Selector::between(l, r);
            }
        }
    }
    let any = crate::plan::any_net(Family::of(&local));
    Selector::between(any, any)
}

/// The network a selector's address range is exactly, if it is one.
fn prefix(ts: &TrafficSelector) -> Option<IpNet> {
    let mut nets: Vec<IpNet> = match (ts.start, ts.end) {
        (IpAddr::V4(a), IpAddr::V4(b)) => Ipv4Subnets::new(a, b, 0).map(IpNet::V4).collect(),
        (IpAddr::V6(a), IpAddr::V6(b)) => Ipv6Subnets::new(a, b, 0).map(IpNet::V6).collect(),
        _ => return None,
    };
    (nets.len() == 1).then(|| nets.remove(0))
}

/// The selector of one network: every protocol and port (RFC 7296 §3.13.1).
pub fn net_selector(net: &IpNet) -> TrafficSelector {
    TrafficSelector {
        protocol: 0,
        start_port: 0,
        end_port: u16::MAX,
        start: net.network(),
        end: net.broadcast(),
    }
}

/// A selector's port range as the kernel's port and mask: exact when the range is one
/// port or an aligned power-of-two block ([`ports_fit`]), else every port.
fn port_match(ts: &TrafficSelector) -> PortMatch {
    let (lo, hi) = (ts.start_port, ts.end_port);
    match ports_fit(lo, hi) {
        true => PortMatch {
            port: lo,
            mask: !(hi - lo),
        },
        false => PortMatch::ANY,
    }
}

/// Whether `lo..=hi` is one port-and-mask match (an XFRM selector holds one): a
/// power-of-two block starting on its own size.
pub fn ports_fit(lo: u16, hi: u16) -> bool {
    let span = u32::from(hi.wrapping_sub(lo)) + 1;
    lo <= hi && span.is_power_of_two() && u32::from(lo) % span == 0
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
        mode: match child.mode {
            IkeMode::Transport => Mode::Transport,
            IkeMode::Tunnel => Mode::Tunnel,
        },
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
