//! Who a policy admits beyond its inventory, in words: one line per authority and per rule
//! that admits certificate holders or keys with IKEv2 (printed by `xfrm-agent check`).

use crate::model::{Endpoint, KeyExchange, Policy, Rule};

impl Policy {
    /// Lines describing the authorities and each rule's admission; empty when the policy
    /// has no authority and every rule uses static keys.
    pub fn admission_summary(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .authorities
            .iter()
            .map(|a| {
                format!(
                    "authority {}: scope {}, revocation {}, {} CA file(s), {} CRL file(s), {} identity pattern(s)",
                    a.name,
                    a.scope.as_str(),
                    a.revocation.as_str(),
                    a.ca_certificates.len(),
                    a.crls.len(),
                    a.identities.len()
                )
            })
            .collect();
        out.extend(self.rules.iter().filter_map(rule_line));
        out
    }
}

fn rule_line(r: &Rule) -> Option<String> {
    if r.admits.is_empty() && r.key_exchange == KeyExchange::Static {
        return None;
    }
    let keying = match r.key_exchange {
        KeyExchange::Static => "static keys",
        KeyExchange::Ikev2 => "IKEv2",
    };
    let mut line = format!(
        "rule {}: from {} | to {}",
        r.name,
        side(&r.from, &r.admits.from, keying),
        side(&r.to, &r.admits.to, keying)
    );
    if !r.identities.is_empty() {
        let ids: Vec<String> = r.identities.iter().map(|i| i.to_string()).collect();
        line.push_str(&format!(" | identities {}", ids.join(", ")));
    }
    Some(line)
}

/// `inventory (static keys) + ca:corp holders (IKEv2)` for one side: inventory hosts in
/// its addresses (a `ca:` side covers every address, so every inventory host), then the
/// certificate holders it admits elsewhere.
fn side(ends: &[Endpoint], admitted: &[String], keying: &str) -> String {
    let names: Vec<String> = ends.iter().map(|e| e.to_string()).collect();
    let mut parts = vec![format!("[{}] inventory ({keying})", names.join(", "))];
    parts.extend(admitted.iter().map(|a| format!("ca:{a} holders (IKEv2)")));
    parts.join(" + ")
}
