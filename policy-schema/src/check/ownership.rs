//! [defaults] timings and legacy ciphers, and the [ownership] ranges: are they wide enough
//! for what the compiler will carve out of them.

use crate::model::Cipher;
use crate::raw::RawPolicy;
use crate::report::Report;

/// Reqid and priority values the compiler reserves for its own catch-alls and exemptions.
const MIN_REQIDS: u64 = 32;
const PRIORITY_RESERVE: u64 = 256;
/// SPIs per sender address; the compiler's slot table wants to stay at most half full.
const SPIS_PER_SENDER: u64 = 256;
const SLOT_HEADROOM: u64 = 2;

pub(crate) fn check_defaults(rep: &mut Report, raw: &RawPolicy) {
    let d = &raw.defaults;
    let v = &d.values;
    if d.durations_complete {
        let at = d
            .rekey_at
            .or(d.skew_at)
            .or(d.grace_at)
            .or(d.table_at)
            .unwrap_or(0);
        let need = 2 * (2 * u128::from(v.clock_skew) + u128::from(v.grace));
        // Each duration's own range is checked where it is read (`fields`).
        if u128::from(v.rekey_interval) < need {
            // Old and new keys overlap for skew on both sides plus grace; an epoch shorter
            // than twice that would have three key generations alive at once.
            rep.error(
                at,
                format!(
                    "defaults: rekey-interval {}s is shorter than 2 × (2 × clock-skew {}s + grace {}s) = {need}s (expected at least {need}s, or a smaller clock-skew or grace)",
                    v.rekey_interval, v.clock_skew, v.grace
                ),
            );
        }
    }
    if v.cipher.is_legacy() {
        let at = d.cipher_at.unwrap_or(0);
        legacy(rep, at, "defaults", v.cipher, v.allow_legacy);
    }
    for r in &raw.rules {
        if let Some(c) = r.cipher.as_ref().filter(|c| c.v.is_legacy()) {
            legacy(rep, c.at, &r.origin.label, c.v, v.allow_legacy);
        }
    }
}

fn legacy(rep: &mut Report, at: usize, label: &str, c: Cipher, allowed: bool) {
    // RFC 8221 section 5: ENCR_3DES SHOULD NOT; its 64-bit block is open to Sweet32
    // (CVE-2016-2183) on long-lived SAs.
    let why = "64-bit blocks (Sweet32), SHOULD NOT per RFC 8221";
    if allowed {
        rep.warn(
            at,
            format!(
                "{label}: cipher \"{}\" is a legacy cipher: {why}; allowed by allow-legacy = true",
                c.as_str()
            ),
        );
    } else {
        rep.error(
            at,
            format!(
                "{label}: cipher \"{}\" is a legacy cipher: {why} (expected aes-gcm-128, aes-gcm-256, chacha20-poly1305 or aes-cbc-hmac-sha256, or allow-legacy = true in [defaults])",
                c.as_str()
            ),
        );
    }
}

fn width((lo, hi): (u32, u32)) -> u64 {
    u64::from(hi) - u64::from(lo) + 1
}

fn hex((lo, hi): (u32, u32)) -> String {
    format!("[{lo:#x}, {hi:#x}]")
}

pub(crate) fn check_ownership(rep: &mut Report, raw: &RawPolicy) {
    let o = &raw.ownership;
    let table = o.table_at.unwrap_or(0);
    let (reqid, prio) = (o.values.reqid, o.values.priority);
    let at = o.reqid_at.unwrap_or(table);
    if reqid.0 == 0 {
        // A template with reqid 0 matches SAs of any reqid (xfrm_state_ok): not ownable.
        rep.error(at, format!("ownership: reqid-range {} contains 0, which the kernel treats as \"any reqid\" (expected lo >= 1)", hex(reqid)));
    }
    if width(reqid) < MIN_REQIDS {
        rep.error(
            at,
            format!(
                "ownership: reqid-range {} holds {} reqids (expected at least {MIN_REQIDS})",
                hex(reqid),
                width(reqid)
            ),
        );
    }
    // Each rule has two priorities: its own and its backstops' (docs/design.md).
    let need = PRIORITY_RESERVE + (raw.exemptions.len() + 2 * raw.rules.len()) as u64;
    if width(prio) < need {
        rep.error(
            o.priority_at.unwrap_or(table),
            format!(
                "ownership: priority-range {} holds {} priorities, expected at least {need} (256 reserved + {} exemptions + 2 × {} rules)",
                hex(prio), width(prio), raw.exemptions.len(), raw.rules.len()
            ),
        );
    }
    check_spi(rep, raw, o.spi_at.unwrap_or(table));
}

/// SPIs: never the reserved ones, and room for every sender's slots.
fn check_spi(rep: &mut Report, raw: &RawPolicy, at: usize) {
    let spi = raw.ownership.values.spi;
    if spi.0 < 256 {
        rep.error(at, format!("ownership: spi-range {} starts below 256 (expected lo >= 256: RFC 4303 reserves SPIs 1-255, and 0 means no SA)", hex(spi)));
    }
    let host_addrs: usize = raw.hosts.iter().map(|h| h.addresses.len()).sum();
    let cluster_addrs: usize = raw
        .clusters
        .iter()
        .map(|c| c.addresses.len() * c.members.len())
        .sum();
    let senders = (host_addrs + cluster_addrs) as u64;
    let need = SPIS_PER_SENDER * SLOT_HEADROOM * senders;
    if width(spi) < need {
        rep.error(
            at,
            format!(
                "ownership: spi-range {} holds {} SPIs, expected at least {need} (256 per sender address × 2 headroom × {senders} sender addresses)",
                hex(spi), width(spi)
            ),
        );
    }
}
