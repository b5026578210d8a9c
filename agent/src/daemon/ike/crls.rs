//! The authorities' CRLs as the daemon tracks them: a replacement older than the CRL in
//! force is refused (a replayed CRL would undo revocations), each CRL's distance to its
//! nextUpdate is shown and warned about ahead of time (`crl-warning`), and an authority
//! file that failed to load is reported with its location. Pure: time comes in as Unix
//! seconds.

use std::collections::BTreeMap;

use ike::cert::{CertVerifier, CrlInfo};
use serde::{Deserialize, Serialize};

/// How close a CRL is to its nextUpdate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrlState {
    #[default]
    Current,
    /// Within the authority's `crl-warning` of nextUpdate.
    Expiring,
    /// Past nextUpdate: under strict revocation new peers of the authority are refused.
    Outdated,
}

/// One loaded CRL, as status shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CrlView {
    pub authority: String,
    pub issuer: String,
    /// Unix seconds, if the CRL has a nextUpdate.
    pub next_update: Option<i64>,
    /// Seconds from now to nextUpdate (negative: past).
    pub seconds_left: Option<i64>,
    pub state: CrlState,
}

/// The CRLs in force and what was last said about them.
#[derive(Debug, Default)]
pub struct CrlTracker {
    /// `crl-warning` per authority (seconds).
    pub margins: BTreeMap<String, u64>,
    /// The last authority files that failed to load (located), until a load succeeds.
    pub error: Option<String>,
    /// Loads of authority files refused (unreadable, invalid, older than in force).
    pub errors: u64,
    /// The state last logged per (authority, issuer).
    logged: BTreeMap<(String, String), CrlState>,
}

/// Refuses `new` when one of its CRLs is older (lower crlNumber) than the one of the same
/// authority and issuer in `in_force`. An equal number is the same CRL published again.
pub fn refuse_rollback(in_force: &CertVerifier, new: &CertVerifier) -> Result<(), String> {
    let numbers: BTreeMap<(&str, &str), &[u8]> = (in_force.crls())
        .filter_map(|c| {
            Some((
                (c.authority.as_str(), c.issuer.as_str()),
                c.number.as_deref()?,
            ))
        })
        .collect();
    for c in new.crls() {
        let (Some(n), Some(old)) = (&c.number, numbers.get(&(&*c.authority, &*c.issuer))) else {
            continue;
        };
        if older(n, old) {
            return Err(format!(
                "authority {}: the CRL of \"{}\" has crlNumber {}, older than {} in force (a replayed CRL would undo revocations); the CRLs in force are kept",
                c.authority,
                c.issuer,
                hex(n),
                hex(old)
            ));
        }
    }
    Ok(())
}

/// Big-endian unsigned integers without leading zeros: `a < b`.
fn older(a: &[u8], b: &[u8]) -> bool {
    let trim = |x: &[u8]| -> Vec<u8> { x.iter().copied().skip_while(|b| *b == 0).collect() };
    let (a, b) = (trim(a), trim(b));
    (a.len(), &a) < (b.len(), &b)
}

fn hex(n: &[u8]) -> String {
    let digits: String = n.iter().map(|b| format!("{b:02x}")).collect();
    format!("0x{digits}")
}

impl CrlTracker {
    /// Each CRL of `verifier` at `wall` (Unix seconds).
    pub fn views(&self, verifier: &CertVerifier, wall: i64) -> Vec<CrlView> {
        verifier.crls().map(|c| self.view(c, wall)).collect()
    }

    fn view(&self, c: &CrlInfo, wall: i64) -> CrlView {
        let margin =
            (self.margins.get(&c.authority).copied()).unwrap_or(policy_schema::CRL_WARNING_DEFAULT);
        let left = c.next_update.map(|t| t - wall);
        let state = match left {
            Some(l) if l <= 0 => CrlState::Outdated,
            Some(l) if l.unsigned_abs() <= margin => CrlState::Expiring,
            _ => CrlState::Current,
        };
        CrlView {
            authority: c.authority.clone(),
            issuer: c.issuer.clone(),
            next_update: c.next_update,
            seconds_left: left,
            state,
        }
    }

    /// Logs each CRL whose state changed since last logged (once per change, loudly).
    pub fn warn(&mut self, verifier: &CertVerifier, wall: i64) {
        let views = self.views(verifier, wall);
        self.logged.retain(|k, _| {
            views
                .iter()
                .any(|v| (&v.authority, &v.issuer) == (&k.0, &k.1))
        });
        for v in views {
            let key = (v.authority.clone(), v.issuer.clone());
            if self.logged.insert(key, v.state) == Some(v.state) {
                continue;
            }
            let left = v.seconds_left.unwrap_or_default();
            match v.state {
                CrlState::Current => {}
                CrlState::Expiring => {
                    tracing::warn!(authority = %v.authority, issuer = %v.issuer, seconds_left = left, "CRL reaches its nextUpdate soon: publish a fresh one (under strict revocation new peers are then refused)")
                }
                CrlState::Outdated => {
                    tracing::error!(authority = %v.authority, issuer = %v.issuer, seconds_past = -left, "CRL is past its nextUpdate: under strict revocation new peers of this authority are refused until a fresh CRL is in place; established ones are kept")
                }
            }
        }
    }

    /// When the next state change of a CRL in `verifier` happens after `wall` (Unix s).
    pub fn next_change(&self, verifier: &CertVerifier, wall: i64) -> Option<i64> {
        (verifier.crls())
            .filter_map(|c| {
                let margin = (self.margins.get(&c.authority).copied())
                    .unwrap_or(policy_schema::CRL_WARNING_DEFAULT);
                let t = c.next_update?;
                let warn_at = t.saturating_sub_unsigned(margin);
                [warn_at, t].into_iter().find(|x| *x > wall)
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ike::cert::testpki::Pki;
    use ike::cert::RevocationMode;

    fn verifier(ca: &Pki, number: u64, year: i32) -> CertVerifier {
        let mut v = CertVerifier::new();
        let crl = ca.crl_numbered(&[], year, number);
        v.add_authority("corp", &[&ca.ca_der], &[&crl], RevocationMode::Strict)
            .unwrap();
        v
    }

    #[test]
    fn an_older_crl_is_refused_an_equal_or_newer_one_taken() {
        let ca = Pki::new("Corp CA", 1);
        let in_force = verifier(&ca, 0x105, 2030);
        let e = refuse_rollback(&in_force, &verifier(&ca, 0x104, 2031)).unwrap_err();
        assert!(e.contains("crlNumber 0x0104, older than 0x0105"), "{e}");
        assert!(refuse_rollback(&in_force, &verifier(&ca, 0x105, 2030)).is_ok());
        assert!(refuse_rollback(&in_force, &verifier(&ca, 0x106, 2030)).is_ok());
        // Another issuer's numbering is its own.
        let other = Pki::new("Other CA", 2);
        assert!(refuse_rollback(&in_force, &verifier(&other, 1, 2030)).is_ok());
    }

    #[test]
    fn crl_states_follow_the_margin_and_next_update() {
        let ca = Pki::new("Corp CA", 1);
        let v = verifier(&ca, 1, 2030);
        let next = v.crls().next().unwrap().next_update.unwrap();
        let mut t = CrlTracker::default();
        t.margins.insert("corp".into(), 3600);
        let state = |wall| t.views(&v, wall)[0].state;
        assert_eq!(state(next - 3601), CrlState::Current);
        assert_eq!(state(next - 3600), CrlState::Expiring);
        assert_eq!(state(next), CrlState::Outdated);
        assert_eq!(t.views(&v, next - 10)[0].seconds_left, Some(10));
        assert_eq!(t.next_change(&v, next - 7200), Some(next - 3600));
        assert_eq!(t.next_change(&v, next - 3600), Some(next));
        assert_eq!(t.next_change(&v, next), None);
    }
}
