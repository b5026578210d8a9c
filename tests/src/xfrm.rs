//! Kernel XFRM state as `ip -s xfrm state` / `ip -s xfrm policy` print it, read back into
//! values a test can compare: which objects exist, which the agent owns (by the ranges of
//! docs/design.md "Ownership"), their counters and creation marks.
//!
//! Independent of the agent's own decoder on purpose: the tests judge the agent by what
//! iproute2 sees in the kernel.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// The default ownership ranges (policy-reference.md `[ownership]`).
pub const REQID_RANGE: (u32, u32) = (0x7a00_0000, 0x7a00_00ff);
pub const PRIORITY_RANGE: (u32, u32) = (0x10000, 0x1ffff);
pub const SPI_RANGE: (u32, u32) = (0x4000_0000, 0x7fff_ffff);

fn within(v: u32, (lo, hi): (u32, u32)) -> bool {
    (lo..=hi).contains(&v)
}

/// One SA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct State {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub proto: String,
    pub spi: u32,
    pub reqid: u32,
    pub encap: bool,
    pub packets: u64,
    /// "add" time as printed (second resolution).
    pub added: String,
    /// Outbound sequence number (ESN low half), when printed.
    pub oseq: Option<u64>,
    /// Inbound packets dropped by the replay check (too old for the window, or seen
    /// before): the per-SA side of `XfrmInStateSeqError`, for either address family.
    pub replay_drops: u64,
    /// Inbound packets that failed authentication (per SA; `XfrmInStateProtoError`).
    pub integrity_failed: u64,
}

impl State {
    /// Identity in the kernel: (destination, SPI, protocol), plus the source for reading.
    pub fn key(&self) -> (IpAddr, IpAddr, u32) {
        (self.src, self.dst, self.spi)
    }
    /// Ours by docs/design.md: reqid and SPI in the owned ranges, not larval.
    pub fn owned(&self) -> bool {
        self.spi != 0 && within(self.reqid, REQID_RANGE) && within(self.spi, SPI_RANGE)
    }
}

/// One policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// The selector line as printed ("src 10.10.0.10/32 dst 0.0.0.0/0 proto udp …").
    pub selector: String,
    pub dir: String,
    pub action: String,
    pub index: u32,
    pub priority: u32,
    pub reqids: Vec<u32>,
    /// The mark (value, mask), if any: transition guards and backstops have one.
    pub mark: Option<(u32, u32)>,
}

impl Policy {
    /// Identity in the kernel: direction, selector and mark (the priority is not part of it).
    pub fn key(&self) -> (String, String) {
        let sel = match self.mark {
            Some((v, m)) => format!("{} mark {v:#x}/{m:#x}", self.selector),
            None => self.selector.clone(),
        };
        (self.dir.clone(), sel)
    }
    /// The arguments that find this policy with `ip xfrm policy delete|get`: direction,
    /// index and mark. None when iproute2 cannot address it: it sends no mark whose value
    /// is 0 (`mark 0 mask 2` finds nothing), so only netlink or a flush removes those.
    pub fn ip_id(&self) -> Option<String> {
        let id = format!("dir {} index {}", self.dir, self.index);
        match self.mark {
            None => Some(id),
            Some((0, _)) => None,
            Some((v, m)) => Some(format!("{id} mark {v:#x} mask {m:#x}")),
        }
    }
    /// Ours by docs/design.md: priority in the band and every template's reqid in range.
    pub fn owned(&self) -> bool {
        within(self.priority, PRIORITY_RANGE) && self.reqids.iter().all(|r| within(*r, REQID_RANGE))
    }
}

/// Blocks of a dump: a line at column 0 and the indented lines after it.
fn blocks(text: &str) -> Vec<Vec<&str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with([' ', '\t']) || out.is_empty() {
            out.push(vec![line]);
        } else if let Some(b) = out.last_mut() {
            b.push(line);
        }
    }
    out
}

/// The value after `key` among whitespace-separated words, without a "(…)" suffix.
fn word_after<'a>(words: &[&'a str], key: &str) -> Option<&'a str> {
    let i = words.iter().position(|w| *w == key)?;
    let w = words.get(i + 1)?;
    Some(w.split('(').next().unwrap_or(w))
}

fn number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parse `ip -s xfrm state` output.
pub fn parse_states(text: &str) -> Vec<State> {
    blocks(text)
        .into_iter()
        .filter_map(|b| {
            let head: Vec<&str> = b[0].split_whitespace().collect();
            let all: Vec<&str> = b.iter().flat_map(|l| l.split_whitespace()).collect();
            let mut packets = 0;
            let mut added = String::new();
            let mut stats = Stats::default();
            for (i, l) in b.iter().enumerate() {
                if l.trim() == "stats:" {
                    stats = Stats::parse(b.get(i + 1).copied().unwrap_or(""));
                }
                if l.trim() == "lifetime current:" {
                    let next = b.get(i + 1).copied().unwrap_or("");
                    packets = next
                        .split(',')
                        .nth(1)
                        .and_then(|p| p.trim().strip_suffix("(packets)"))
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(0);
                    // "add 2026-11-23 19:15:01 use 2026-…": the use time changes with
                    // traffic; the add time identifies this instance of the SA.
                    let l = b.get(i + 2).map_or("", |l| l.trim());
                    added = l.split(" use ").next().unwrap_or(l).to_string();
                }
            }
            Some(State {
                src: word_after(&head, "src")?.parse().ok()?,
                dst: word_after(&head, "dst")?.parse().ok()?,
                proto: word_after(&all, "proto")?.to_string(),
                spi: number(word_after(&all, "spi")?)? as u32,
                reqid: number(word_after(&all, "reqid")?)? as u32,
                encap: all.contains(&"encap"),
                packets,
                added,
                oseq: word_after(&all, "oseq")
                    .map(|s| s.trim_end_matches(','))
                    .and_then(number),
                replay_drops: stats.replay_window + stats.replay,
                integrity_failed: stats.failed,
            })
        })
        .collect()
}

/// The line after "stats:" (`ip -s`): "replay-window N replay N failed N" (iproute2
/// `xfrm_stats_print`; the kernel's `xfrm_stats`).
#[derive(Default)]
struct Stats {
    replay_window: u64,
    replay: u64,
    failed: u64,
}

impl Stats {
    fn parse(line: &str) -> Stats {
        let w: Vec<&str> = line.split_whitespace().collect();
        let get = |k| word_after(&w, k).and_then(number).unwrap_or(0);
        Stats {
            replay_window: get("replay-window"),
            replay: get("replay"),
            failed: get("failed"),
        }
    }
}

/// Parse `ip -s xfrm policy` output (socket policies are not dumped by the kernel).
pub fn parse_policies(text: &str) -> Vec<Policy> {
    blocks(text)
        .into_iter()
        .filter_map(|b| {
            let dir_line: Vec<&str> = b.get(1)?.split_whitespace().collect();
            let mut reqids = Vec::new();
            for l in &b[2..] {
                let w: Vec<&str> = l.split_whitespace().collect();
                if w.first() == Some(&"proto") {
                    if let Some(r) = word_after(&w, "reqid").and_then(number) {
                        reqids.push(r as u32);
                    }
                }
            }
            Some(Policy {
                selector: b[0].split_whitespace().collect::<Vec<_>>().join(" "),
                dir: word_after(&dir_line, "dir")?.to_string(),
                action: word_after(&dir_line, "action")
                    .unwrap_or("allow")
                    .to_string(),
                index: word_after(&dir_line, "index").and_then(number).unwrap_or(0) as u32,
                priority: number(word_after(&dir_line, "priority")?)? as u32,
                reqids,
                mark: b[2..].iter().find_map(|l| {
                    let (v, m) = l.trim().strip_prefix("mark ")?.trim().split_once('/')?;
                    Some((number(v)? as u32, number(m)? as u32))
                }),
            })
        })
        .collect()
}

/// /proc/net/xfrm_stat as name → value.
pub fn parse_stat(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((it.next()?.to_string(), it.next()?.parse().ok()?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: &str = "src 10.10.0.10 dst 10.10.0.11
\tproto esp spi 0x5c5e1d60(1549671776) reqid 2046820352(0x7a000000) mode transport
\treplay-window 0 seq 0x00000000 flag esn (0x10000000)
\taead rfc4106(gcm(aes)) 0xf1a7 (160 bits) 128
\tanti-replay esn context:
\t seq-hi 0x0, seq 0x0, oseq-hi 0x0, oseq 0x1fe7b9bd
\tlifetime current:
\t  1200(bytes), 12(packets)
\t  add 2026-11-23 19:15:01 use -
\tstats:
\t  replay-window 3 replay 2 failed 1
src 192.0.2.1 dst 192.0.2.2
\tproto esp spi 0x00001000(4096) reqid 1(0x00000001) mode transport
\tencap type espinudp sport 4500 dport 4500 addr 0.0.0.0
\tlifetime current:
\t  0(bytes), 0(packets)
\t  add 2026-11-23 19:15:02 use -
";

    const POLICIES: &str = "src 10.10.0.10/32 dst 0.0.0.0/0 proto udp sport 4500 uid 0
\tdir out action allow index 425 priority 65554 ptype main share any flag  (0x00000000)
\tlifetime current:
\t  0(bytes), 0(packets)
src 10.10.0.10/32 dst 0.0.0.0/0 uid 0
\tdir out action allow index 433 priority 65792 ptype main share any flag  (0x00000000)
\ttmpl src 0.0.0.0 dst 0.0.0.0
\t\tproto esp spi 0x00000000(0) reqid 2046820352(0x7a000000) mode transport
\t\tlevel required share any
src 192.0.2.0/24 dst 198.51.100.0/24 uid 0
\tdir in action allow index 440 priority 131056 ptype main share any flag  (0x00000000)
\ttmpl src 0.0.0.0 dst 0.0.0.0
\t\tproto esp spi 0x00000000(0) reqid 2(0x00000002) mode transport
src 10.10.0.10/32 dst 0.0.0.0/0 uid 0
\tdir out action block index 441 priority 65793 ptype main share any flag  (0x00000000)
\tlifetime current:
\t  0(bytes), 0(packets)
\tmark 0/0x2 
src 10.10.0.10/32 dst 0.0.0.0/0 uid 0
\tdir out action block index 449 priority 65793 ptype main share any flag  (0x00000000)
\tmark 0x2/0x2 
";

    #[test]
    fn states_with_counters_and_ownership() {
        let s = parse_states(STATES);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].spi, 0x5c5e_1d60);
        assert_eq!(s[0].reqid, 0x7a00_0000);
        assert_eq!((s[0].packets, s[0].oseq), (12, Some(0x1fe7_b9bd)));
        assert_eq!(s[0].added, "add 2026-11-23 19:15:01");
        assert!(s[0].owned() && !s[0].encap);
        // The stats line, not the config line's "replay-window 0".
        assert_eq!((s[0].replay_drops, s[0].integrity_failed), (5, 1));
        assert_eq!((s[1].replay_drops, s[1].integrity_failed), (0, 0));
        assert!(!s[1].owned() && s[1].encap);
    }

    #[test]
    fn policies_with_templates_and_ownership() {
        let p = parse_policies(POLICIES);
        assert_eq!(p.len(), 5);
        assert_eq!(
            p[0].selector,
            "src 10.10.0.10/32 dst 0.0.0.0/0 proto udp sport 4500 uid 0"
        );
        assert_eq!(
            (p[0].dir.as_str(), p[0].index, p[0].priority),
            ("out", 425, 65554)
        );
        assert!(
            p[0].owned(),
            "an exemption has no template and is ours by priority"
        );
        assert_eq!(p[1].reqids, vec![0x7a00_0000]);
        assert!(p[1].owned());
        assert!(
            !p[2].owned(),
            "in the band, but its template's reqid is not ours"
        );
        // A backstop's two halves: distinct keys, and only the 2/2 one can be named to
        // iproute2 (it sends no mark whose value is 0).
        assert_eq!((p[3].mark, p[4].mark), (Some((0, 2)), Some((2, 2))));
        assert!(p[3].owned() && p[1].key() != p[3].key() && p[3].key() != p[4].key());
        assert_eq!(p[3].ip_id(), None);
        assert_eq!(
            p[4].ip_id().as_deref(),
            Some("dir out index 449 mark 0x2 mask 0x2")
        );
        assert_eq!(p[1].ip_id().as_deref(), Some("dir out index 433"));
    }
}
