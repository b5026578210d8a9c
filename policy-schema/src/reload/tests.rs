//! A reloader fed one edited text after another gives, every time, exactly what a fresh
//! full load of that text gives: policy, warnings, or errors with their positions.

use proptest::prelude::*;

use super::Reloader;
use crate::{load, Diagnostics, Loaded, Policy};

/// A valid key per seed (standard base64 of 32 equal bytes).
fn key(seed: u8) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode([seed.max(1); 32])
}

/// One `[[hosts]]` entry; `shape` picks its form, from plain to broken or tricky.
fn host(name: u8, addr: u8, key_seed: u8, shape: u8) -> String {
    let (n, a, k) = (format!("h{name}"), format!("10.0.0.{addr}"), key(key_seed));
    match shape {
        0 => format!("[[hosts]]\nname = \"{n}\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\n"),
        1 => format!("[[hosts]]\nname = \"{n}\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\nzones = [\"lan\"]\n"),
        2 => format!("[[hosts]] # gateway\nname = \"{n}\"\naddresses = [\n  \"{a}\", # first\n  \"10.9.{addr}.1\",\n]\npublic-key = \"{k}\"\ngateway-for = [\"10.{addr}.0.0/16\"]\nencapsulation = \"udp\"\n"),
        3 => format!("[[hosts]]\r\nname = \"{n}\"\r\naddresses = [\"{a}\"]\r\npublic-key = \"{k}\"\r\n\r\n"),
        4 => format!("[[hosts]]\nname = \"{n}\"\naddresses = [\"10.0.0.{}\"]\npublic-key = \"{k}\"\n", 256 + u16::from(addr)),
        5 => format!("[[hosts]]\nname = \"{n}\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\nport = 1\n"),
        6 => format!("[[hosts]]\nname = \"{n}\"\naddresses = [\n[\"{a}\"]]\npublic-key = \"{k}\"\n"),
        7 => format!("[[hosts]]\nname = \"\"\"\n[[hosts]]\n{n}\"\"\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\n"),
        8 => format!("[[hosts]]\nname = '{n}'\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\n"),
        9 => format!("[[hosts]]\nname = \"{n}\"\nname = \"{n}\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\n"),
        10 => format!("[[hosts]]\nname = \"{n}\"\npublic-key = \"{k}\"\n"),
        11 => format!("[[hosts]]\nname = \"{n}\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\nzones = [\"wan\"]\n"),
        _ => format!("[[hosts]]\nname = \"{n}\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\n# [[hosts]]\n\n"),
    }
}

/// Anything but a host: settings, rules, clusters, comments, stray or broken lines.
fn other(which: u8, x: u8) -> String {
    match which {
        0 => "version = 1\n".into(),
        1 => "[zones]\nlan = [\"10.0.0.0/24\"]\n".into(),
        2 => "[zones]\nlan = [\"10.0.0.0/24\"]\nwan = [\"10.9.0.0/16\"]\n".into(),
        3 => "[[rules]]\nname = \"all\"\nfrom = [\"any\"]\nto = [\"any\"]\naction = \"require\"\n".into(),
        4 => format!("[[rules]]\nname = \"r{x}\"\nfrom = [\"host:h{x}\"]\nto = [\"host:h{}\"]\naction = \"require\"\n", x / 2),
        5 => format!("[[clusters]]\nname = \"c{x}\"\naddresses = [\"10.0.1.{x}\"]\npublic-key = \"{}\"\nmembers = [\"h{x}\"]\n", key(200 - x % 50)),
        6 => "# a comment\n\n".into(),
        7 => "[defaults]\nmode = \"tunnel\"\n".into(),
        8 => "= broken\n".into(),
        9 => "[hosts]\nname = \"x\"\n".into(),
        10 => "notes = [\n[\"x\"],\n]\n".into(),
        11 => "s = \"\"\"\n[[hosts]]\nname = \"ghost\"\n\"\"\"\n".into(),
        13 => format!("[[rules]]\nname = \"web{x}\"\nfrom = [\"zone:lan\", \"10.8.0.0/16\"]\nto = [\n  \"host:h{x}\", # the server\n  \"any\",\n]\nprotocol = \"tcp\"\nports = [443, \"8000-8080\"]\naction = \"request\"\nmode = \"transport\"\ncipher = \"aes-gcm-256\"\n"),
        14 => format!("[[rules]]\nname = \"legacy{x}\"\nfrom = [\"host:h{x}\"]\nto = [\"cluster:c{x}\"]\naction = \"require\"\ncipher = \"3des-hmac-sha1\"\n"),
        15 => "[defaults]\nallow-legacy = true\ncipher = \"chacha20-poly1305\"\n".into(),
        16 => "[[authorities]]\nname = \"corp\"\nca-certificates = [\"/ca/corp.pem\"]\nrevocation = \"relaxed\"\nscope = \"any\"\n".into(),
        17 => "[[authorities]]\nname = \"corp\"\nca-certificates = [\"/ca/corp.pem\"]\ncrls = [\"/crl/corp.crl\"]\n".into(),
        18 => format!("[[rules]]\nname = \"ca{x}\"\nfrom = [\"ca:corp\"]\nto = [\"host:h{x}\"]\nprotocol = \"tcp\"\nports = [22]\naction = \"require\"\nkey-exchange = \"ikev2\"\n"),
        19 => format!("[[rules]]\nname = \"id{x}\"\nfrom = [\"any\"]\nto = [\"host:h{x}\"]\naction = \"request\"\nidentities = [\"dns:*.corp.example\"]\n"),
        20 => "[defaults]\nkey-exchange = \"ikev2\"\n".into(),
        _ => format!("[[exemptions]]\nname = \"x{x}\"\nprotocol = \"icmp\"\n"),
    }
}

fn block() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u8..12, 0u8..12, 0u8..12).prop_map(|(n, a, k)| host(n, a, k, 0)),
        4 => (0u8..12, 0u8..12, 0u8..12, 0u8..13).prop_map(|(n, a, k, s)| host(n, a, k, s)),
        4 => (0u8..22, 0u8..12).prop_map(|(w, x)| other(w, x)),
    ]
}

#[derive(Clone, Debug)]
enum Edit {
    Replace(usize, String),
    Insert(usize, String),
    Remove(usize),
    Swap(usize, usize),
    Duplicate(usize),
    /// Change one byte's worth of text somewhere (a cut through anything).
    Splice(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (any::<usize>(), block()).prop_map(|(i, b)| Edit::Replace(i, b)),
        3 => (any::<usize>(), block()).prop_map(|(i, b)| Edit::Insert(i, b)),
        2 => any::<usize>().prop_map(Edit::Remove),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Edit::Swap(i, j)),
        1 => any::<usize>().prop_map(Edit::Duplicate),
        1 => (any::<usize>(), "[ -~\\n\\[\\]\"]{0,4}").prop_map(|(i, s)| Edit::Splice(i, s)),
    ]
}

fn apply(blocks: &mut Vec<String>, e: &Edit) {
    let n = blocks.len().max(1);
    match e.clone() {
        Edit::Replace(i, b) if !blocks.is_empty() => blocks[i % n] = b,
        Edit::Insert(i, b) => blocks.insert(i % (blocks.len() + 1), b),
        Edit::Remove(i) if !blocks.is_empty() => drop(blocks.remove(i % n)),
        Edit::Swap(i, j) if !blocks.is_empty() => blocks.swap(i % n, j % n),
        Edit::Duplicate(i) if !blocks.is_empty() => blocks.insert(i % n, blocks[i % n].clone()),
        Edit::Splice(i, s) if !blocks.is_empty() => {
            let b = &mut blocks[i % n];
            let mut at = (i / n) % (b.len() + 1);
            while !b.is_char_boundary(at) {
                at -= 1;
            }
            b.insert_str(at, &s);
        }
        _ => {}
    }
}

type Outcome = Result<(Policy, Vec<crate::Diagnostic>), Diagnostics>;

fn outcome(r: Result<Loaded, Diagnostics>) -> Outcome {
    r.map(|l| (l.policy, l.warnings))
}

/// Reload `text` as the daemon would (with the policy in force) and as a fresh load;
/// how many hosts it reused.
fn step(r: &mut Reloader, current: &mut Option<Policy>, text: &str) -> usize {
    let want = outcome(load("p.toml", text));
    let got = outcome(r.load("p.toml", text, current.as_ref()));
    assert_eq!(got, want, "for:\n{text}");
    if let Ok((policy, _)) = got {
        *current = Some(policy);
    }
    r.reused
}

thread_local! {
    static REUSED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The generated edits do exercise reuse (not only the full path).
#[test]
fn edit_sequences_reuse_hosts() {
    REUSED.with(|c| c.set(0));
    every_reload_equals_a_full_load();
    let reused = REUSED.with(std::cell::Cell::get);
    assert!(reused > 1000, "only {reused} hosts reused over all cases");
}

fn initial() -> Vec<String> {
    let mut b = vec![other(0, 0), other(1, 0), other(3, 0)];
    b.extend((0..6).map(|i| host(i, i + 1, i + 1, 0)));
    b.push(host(6, 7, 7, 1));
    b
}

/// Each text after the first, reloaded after the one before, as a fresh load would.
fn reload_all(texts: &[String]) -> Vec<Outcome> {
    let (mut r, mut current) = (Reloader::new(), None);
    texts
        .iter()
        .map(|t| {
            step(&mut r, &mut current, t);
            outcome(load("p.toml", t))
        })
        .collect()
}

fn messages(o: &Outcome) -> Vec<String> {
    match o {
        Ok((_, w)) => w.iter().map(ToString::to_string).collect(),
        Err(d) => d.0.iter().map(ToString::to_string).collect(),
    }
}

/// An authority's scope changes and the rules do not: the reused rule's admission is
/// derived again from the new [[authorities]], as a fresh load derives it.
#[test]
fn a_scope_change_reaches_reused_rules() {
    let mut b = initial();
    b.push(other(17, 0));
    let before = b.concat();
    *b.last_mut().expect("pushed") = other(16, 0);
    let out = reload_all(&[before, b.concat()]);
    let admits = |o: &Outcome| o.as_ref().expect("valid").0.rules[0].admits.clone();
    assert!(admits(&out[0]).is_empty());
    assert_eq!(admits(&out[1]).all(), ["corp"]);
}

/// A zone that reused hosts name disappears: the reused entries must not hide the error.
#[test]
fn a_removed_zone_is_reported_at_the_unchanged_hosts() {
    let mut b = initial();
    let before = b.concat();
    b[1] = other(6, 0);
    let out = reload_all(&[before, b.concat()]);
    let msgs = messages(&out[1]);
    assert!(
        msgs.iter().any(|m| m.starts_with("p.toml:37:10: error: ")
            && m.contains("hosts[6] \"h6\": zones \"lan\" is not a defined zone")),
        "{msgs:#?}"
    );
}

/// A broken entry after unchanged ones: errors at their line and column, labels counted
/// over the whole file, and a duplicate that points back at an unchanged entry.
#[test]
fn errors_after_unchanged_entries_are_located() {
    let mut b = initial();
    let before = b.concat();
    b.push(host(9, 44, 9, 4));
    b.push(host(2, 40, 40, 0));
    let out = reload_all(&[before, b.concat()]);
    let msgs = messages(&out[1]);
    let want = [
        "p.toml:40:14: error: hosts[7] \"h9\": addresses \"10.0.0.300\" is not an IP address (expected e.g. \"10.0.0.1\" or \"fd00::1\")",
        "p.toml:43:8: error: hosts[8] \"h2\": duplicate host name \"h2\", already used by hosts[2] \"h2\" at p.toml:18:8 (expected unique names)",
    ];
    assert_eq!(msgs, want);
}

/// The valid corpus files (each a realistic policy, some with warnings).
fn corpus() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/valid");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| std::fs::read_to_string(p).expect("corpus file"))
        .collect();
    out.sort();
    out
}

/// A corpus file cut into blocks at its `[` lines, so that edits move whole tables.
fn blocks_of(text: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    for line in text.split_inclusive('\n') {
        if line.starts_with('[') {
            out.push(String::new());
        }
        out.last_mut().expect("one block").push_str(line);
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn edited_corpus_files_reload_as_they_load(
        i in 0usize..16,
        edits in prop::collection::vec(edit(), 1..12),
    ) {
        let files = corpus();
        let mut blocks = blocks_of(&files[i % files.len()]);
        let (mut r, mut current) = (Reloader::new(), None);
        step(&mut r, &mut current, &blocks.concat());
        for e in &edits {
            apply(&mut blocks, e);
            step(&mut r, &mut current, &blocks.concat());
        }
    }

    #[test]
    fn every_reload_equals_a_full_load(edits in prop::collection::vec(edit(), 1..24)) {
        let mut blocks = initial();
        blocks.push(other(13, 2));
        let (mut r, mut current) = (Reloader::new(), None);
        step(&mut r, &mut current, &blocks.concat());
        let mut reused = 0;
        for e in &edits {
            apply(&mut blocks, e);
            reused += step(&mut r, &mut current, &blocks.concat());
        }
        REUSED.with(|c| c.set(c.get() + reused));
    }

    /// A policy other than the last one returned is never trusted.
    #[test]
    fn a_stale_previous_policy_is_not_used(edits in prop::collection::vec(edit(), 1..12)) {
        let mut blocks = initial();
        let mut r = Reloader::new();
        let mut stale = None;
        for e in &edits {
            let text = blocks.concat();
            let got = outcome(r.load("p.toml", &text, stale.as_ref()));
            prop_assert_eq!(got, outcome(load("p.toml", &text)));
            stale = load("p.toml", &text).ok().map(|l| {
                let mut p = l.policy;
                if let Some(a) = p.hosts.first_mut().and_then(|h| h.addresses.first_mut()) {
                    *a = "10.200.0.1".parse().expect("an address");
                }
                if let Some(r) = p.rules.first_mut() {
                    r.action = crate::Action::Permit;
                }
                p
            });
            apply(&mut blocks, e);
        }
    }
}
