//! Human and JSON views of a desired set (`plan`). Pure: values in, text/JSON out.
//!
//! The JSON shape is an interface other tools rely on: one object
//! `{ host, policies: [...], states: [...], next_change }` (`next_change` in whole Unix
//! seconds); SPIs are `"0x…"` strings, state
//! addresses carry no prefix, selectors are CIDR.

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::plan::Timestamp;

use crate::model::{
    Algorithm, Desired, DesiredPolicy, DesiredSa, Level, Mark, PolicyAction, PolicyKey, PortMatch,
    SaKey,
};

/// `"any"`, `"80"` or `"16992-16995"`.
pub fn port_str(p: &PortMatch) -> String {
    p.to_string()
}

/// `allow`, `block` or `ipsec`.
pub fn action_str(a: &PolicyAction) -> &'static str {
    match a {
        PolicyAction::Allow => "allow",
        PolicyAction::Block => "block",
        PolicyAction::Protect(_) => "ipsec",
    }
}

fn level_str(l: Level) -> &'static str {
    match l {
        Level::Required => "required",
        Level::Use => "use",
    }
}

/// One policy as JSON.
pub fn policy_json(k: &PolicyKey, p: &DesiredPolicy) -> Value {
    let templates: Vec<Value> = match &p.spec.action {
        PolicyAction::Protect(ts) => ts
            .iter()
            .map(|t| {
                json!({
                    "proto": "esp",
                    "mode": t.mode.as_str(),
                    "reqid": t.reqid,
                    "level": level_str(t.level),
                    "src": t.tunnel.map(|(s, _)| s.to_string()),
                    "dst": t.tunnel.map(|(_, d)| d.to_string()),
                })
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut v = json!({
        "dir": k.dir.as_str(),
        "src": k.sel.src.to_string(),
        "dst": k.sel.dst.to_string(),
        "proto": k.sel.proto,
        "sport": port_str(&k.sel.sport),
        "dport": port_str(&k.sel.dport),
        "priority": p.spec.priority,
        "action": action_str(&p.spec.action),
        "templates": templates,
        "origin": p.origin.to_string(),
    });
    // Only backstops carry a mark (their key differs from the policy they cover by it).
    if let Some(m) = k.mark {
        v["mark"] = json!(mark_str(&m));
    }
    v
}

/// A mark as `value/mask`, hex.
fn mark_str(m: &Mark) -> String {
    format!("{:#x}/{:#x}", m.value, m.mask)
}

/// One SA as JSON; keys only with `show_keys`.
pub fn state_json(k: &SaKey, s: &DesiredSa, show_keys: bool) -> Value {
    let spec = &s.spec;
    let mut v = json!({
        "src": spec.src.to_string(),
        "dst": k.dst.to_string(),
        "spi": format!("{:#010x}", k.spi),
        "reqid": spec.reqid,
        "mode": spec.mode.as_str(),
        "algorithm": spec.alg.display_name(),
        "icv_bits": spec.alg.icv_bits(),
        "replay_window": spec.replay_window,
        "esn": spec.esn,
        "encap": spec.encap.map(|e| format!("espinudp {}:{}", e.sport, e.dport)),
        "epoch": s.meta.epoch,
        "dir": s.meta.dir,
        "peer": s.meta.peer,
        "selector": spec.sel.to_string(),
        "lifetime": { "soft_secs": spec.lifetime.soft_secs, "hard_secs": spec.lifetime.hard_secs },
    });
    if show_keys {
        let obj = v.as_object_mut().expect("object");
        match &spec.alg {
            Algorithm::Aead { key, .. } => {
                obj.insert("key".into(), json!(key.to_hex()));
            }
            Algorithm::EncAuth {
                enc_key, auth_key, ..
            } => {
                obj.insert("key".into(), json!(enc_key.to_hex()));
                obj.insert("auth_key".into(), json!(auth_key.to_hex()));
            }
        }
    }
    v
}

/// The whole plan as one JSON object.
pub fn plan_json(d: &Desired, show_keys: bool) -> Value {
    json!({
        "host": d.host,
        "policies": d.policies.iter().map(|(k, p)| policy_json(k, p)).collect::<Vec<_>>(),
        "states": d.states.iter().map(|(k, s)| state_json(k, s, show_keys)).collect::<Vec<_>>(),
        "next_change": d.next_change.map(Timestamp::secs),
    })
}

/// Left-aligned columns separated by a space (the last one unpadded).
fn row(out: &mut String, widths: &[usize], cols: &[String]) {
    for (i, c) in cols.iter().enumerate() {
        match widths.get(i) {
            Some(w) if i + 1 < cols.len() => {
                let _ = write!(out, "{c:<w$} ");
            }
            _ => out.push_str(c),
        }
    }
    out.push('\n');
}

fn strs(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

fn template_str(a: &PolicyAction) -> String {
    match a {
        PolicyAction::Protect(ts) => ts
            .iter()
            .map(|t| {
                format!(
                    "esp/{}/{} reqid {}",
                    t.mode.as_str(),
                    level_str(t.level),
                    t.reqid
                )
            })
            .collect::<Vec<_>>()
            .join(","),
        a => action_str(a).to_string(),
    }
}

/// The plan as aligned tables for a terminal, read at `now`.
pub fn plan_table(d: &Desired, show_keys: bool, now: Timestamp) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "host {}: {} policies, {} states",
        d.host,
        d.policies.len(),
        d.states.len()
    );
    out.push_str("\nPOLICIES\n");
    let pw = [4, 8, 22, 22, 5, 11, 11, 34];
    row(
        &mut out,
        &pw,
        &strs(&[
            "dir", "priority", "src", "dst", "proto", "sport", "dport", "action", "from",
        ]),
    );
    let mut pols: Vec<_> = d.policies.iter().collect();
    pols.sort_by_key(|(k, p)| (p.spec.priority, k.dir, k.sel));
    for (k, p) in pols {
        let cols = [
            k.dir.as_str().to_string(),
            p.spec.priority.to_string(),
            k.sel.src.to_string(),
            k.sel.dst.to_string(),
            k.sel.proto.to_string(),
            port_str(&k.sel.sport),
            port_str(&k.sel.dport),
            match k.mark {
                Some(m) => format!("{} mark {}", template_str(&p.spec.action), mark_str(&m)),
                None => template_str(&p.spec.action),
            },
            p.origin.to_string(),
        ];
        row(&mut out, &pw, &cols);
    }
    out.push_str("\nSTATES\n");
    let sw = [12, 4, 7, 22, 22, 10, 30, 8];
    row(
        &mut out,
        &sw,
        &strs(&[
            "peer",
            "dir",
            "epoch",
            "src",
            "dst",
            "spi",
            "algorithm",
            "encap",
            "key",
        ]),
    );
    let mut sas: Vec<_> = d.states.iter().collect();
    sas.sort_by_key(|(k, s)| (s.meta.peer.clone(), s.meta.dir, s.meta.epoch, **k));
    for (k, s) in sas {
        let cols = [
            s.meta.peer.clone(),
            if s.meta.dir == crate::model::SaDir::In {
                "in"
            } else {
                "out"
            }
            .to_string(),
            s.meta.epoch.to_string(),
            s.spec.src.to_string(),
            k.dst.to_string(),
            format!("{:#010x}", k.spi),
            s.spec.alg.display_name(),
            if s.spec.encap.is_some() {
                "udp-4500"
            } else {
                "-"
            }
            .to_string(),
            if show_keys {
                key_hex(&s.spec.alg)
            } else {
                "[hidden]".to_string()
            },
        ];
        row(&mut out, &sw, &cols);
    }
    if let Some(t) = d.next_change {
        let _ = writeln!(out, "\nnext change {}", crate::clock::human(t, now));
    }
    out
}

/// All key material of an algorithm, hex (auth key after a `/`).
pub fn key_hex(a: &Algorithm) -> String {
    match a {
        Algorithm::Aead { key, .. } => key.to_hex(),
        Algorithm::EncAuth {
            enc_key, auth_key, ..
        } => format!("{}/{}", enc_key.to_hex(), auth_key.to_hex()),
    }
}
