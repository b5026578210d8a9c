//! A desired set as `ip xfrm` commands for `ip -batch -` (interoperability, debugging).
//!
//! iproute2 cannot express selector port masks (`sport 16992/0xfffc`), so masked port or
//! ICMP-type blocks are expanded into one policy per value (up to 256; a larger block is
//! left as a comment). The result is the same traffic behaviour with more policies. Nor can
//! it set an SA's initial sequence number; that only matters for re-installations.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::model::{
    Algorithm, Desired, DesiredPolicy, Level, PolicyAction, PolicyKey, PortMatch, SaKey, SaSpec,
    Selector,
};

const MAX_EXPANSION: u32 = 256;

fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "ipv6-icmp".into(),
        n => n.to_string(),
    }
}

/// The values of a port match, or None if it is "any" or too large to expand.
fn expand(p: &PortMatch) -> Option<Vec<u16>> {
    if p.is_any() {
        return Some(Vec::new());
    }
    let (lo, hi) = p.range();
    (u32::from(hi - lo) < MAX_EXPANSION).then(|| (lo..=hi).collect())
}

/// Selector text for each expanded (sport, dport) value pair.
fn selectors(s: &Selector) -> Result<Vec<String>, String> {
    let too_big = || {
        format!(
            "port block {}/{:#06x} is too large to expand",
            s.sport.port, s.sport.mask
        )
    };
    let sports = expand(&s.sport).ok_or_else(too_big)?;
    let dports = expand(&s.dport).ok_or_else(too_big)?;
    let icmp = matches!(s.proto, 1 | 58);
    let (sk, dk) = if icmp {
        ("type", "code")
    } else {
        ("sport", "dport")
    };
    let opt = |v: &[u16]| -> Vec<Option<u16>> {
        if v.is_empty() {
            vec![None]
        } else {
            v.iter().copied().map(Some).collect()
        }
    };
    let mut out = Vec::new();
    for sp in opt(&sports) {
        for dp in opt(&dports) {
            let mut t = format!("src {} dst {}", s.src, s.dst);
            if s.proto != 0 {
                let _ = write!(t, " proto {}", proto_name(s.proto));
            }
            if let Some(p) = sp {
                let _ = write!(t, " {sk} {p}");
            }
            if let Some(p) = dp {
                let _ = write!(t, " {dk} {p}");
            }
            out.push(t);
        }
    }
    Ok(out)
}

fn wildcard(v6: bool) -> &'static str {
    if v6 {
        "::"
    } else {
        "0.0.0.0"
    }
}

fn policy_lines(k: &PolicyKey, p: &DesiredPolicy, out: &mut String) {
    let action = match &p.spec.action {
        PolicyAction::Allow => "action allow".to_string(),
        PolicyAction::Block => "action block".to_string(),
        PolicyAction::Protect(ts) => ts
            .iter()
            .map(|t| {
                let (src, dst) = match t.tunnel {
                    Some((s, d)) => (s.to_string(), d.to_string()),
                    None => (
                        wildcard(k.sel.is_v6()).into(),
                        wildcard(k.sel.is_v6()).into(),
                    ),
                };
                let level = if t.level == Level::Required {
                    "required"
                } else {
                    "use"
                };
                format!(
                    "tmpl src {src} dst {dst} proto esp reqid {} mode {} level {level}",
                    t.reqid,
                    t.mode.as_str()
                )
            })
            .collect::<Vec<_>>()
            .join(" "),
    };
    let mark = k
        .mark
        .map(|m| format!(" mark {:#x} mask {:#x}", m.value, m.mask))
        .unwrap_or_default();
    match selectors(&k.sel) {
        Ok(sels) => {
            for s in sels {
                let _ = writeln!(
                    out,
                    "xfrm policy add {s} dir {} priority {}{mark} {action}",
                    k.dir.as_str(),
                    p.spec.priority
                );
            }
        }
        Err(why) => {
            let _ = writeln!(
                out,
                "# {} ({}): not expressible in ip xfrm: {why}",
                k, p.origin
            );
        }
    }
}

fn alg_text(a: &Algorithm) -> String {
    match a {
        Algorithm::Aead {
            name,
            key,
            icv_bits,
        } => format!("aead '{name}' 0x{} {icv_bits}", key.to_hex()),
        Algorithm::EncAuth {
            enc_name,
            enc_key,
            auth_name,
            auth_key,
            trunc_bits,
        } => format!(
            "enc '{enc_name}' 0x{} auth-trunc '{auth_name}' 0x{} {trunc_bits}",
            enc_key.to_hex(),
            auth_key.to_hex()
        ),
    }
}

fn sel_text(s: &Selector) -> String {
    // A state selector cannot carry masks either; ours pin at most one exact port.
    selectors(s)
        .ok()
        .and_then(|v| v.into_iter().next())
        .unwrap_or_else(|| format!("src {} dst {}", s.src, s.dst))
}

fn state_line(k: &SaKey, s: &SaSpec) -> String {
    let mut t = format!(
        "xfrm state add src {} dst {} proto esp spi {:#010x} reqid {} mode {}",
        s.src,
        k.dst,
        k.spi,
        s.reqid,
        s.mode.as_str()
    );
    let _ = write!(t, " replay-window {}", s.replay_window);
    if s.esn {
        t.push_str(" flag esn");
    }
    let _ = write!(t, " {} sel {}", alg_text(&s.alg), sel_text(&s.sel));
    let _ = write!(
        t,
        " limit time-soft {} limit time-hard {}",
        s.lifetime.soft_secs, s.lifetime.hard_secs
    );
    if let Some(e) = s.encap {
        let oa: IpAddr = if k.dst.is_ipv6() {
            "::".parse().expect("literal")
        } else {
            "0.0.0.0".parse().expect("literal")
        };
        let _ = write!(t, " encap espinudp {} {} {oa}", e.sport, e.dport);
    }
    t
}

/// States first (policies refer to them), then policies in precedence order.
/// Without `show_keys` the state lines are commented out: keys never print by accident.
pub fn render(d: &Desired, show_keys: bool) -> String {
    let mut out = format!(
        "# xfrm-agent render for host {} — feed to `ip -batch -`\n",
        d.host
    );
    for (k, s) in &d.states {
        let line = state_line(k, &s.spec);
        if show_keys {
            let _ = writeln!(out, "{line}");
        } else {
            let _ = writeln!(
                out,
                "# {} (keys hidden: pass --show-keys)",
                line.split(" replay-window").next().unwrap_or_default()
            );
        }
    }
    let mut pols: Vec<_> = d.policies.iter().collect();
    pols.sort_by_key(|(k, p)| (p.spec.priority, k.dir, k.sel));
    for (k, p) in pols {
        policy_lines(k, p, &mut out);
    }
    out
}
