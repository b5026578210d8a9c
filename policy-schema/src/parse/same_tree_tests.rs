//! The fast builder against toml_edit: whenever the fast path accepts a text, toml_edit
//! accepts it too and yields the same tree (keys, order, values, every span). That is what
//! makes the fast path safe to take: the walk cannot tell which parser ran.

use proptest::prelude::*;

use super::{convert, events, scan};

/// Each fast tree == the converted toml_edit tree, or that fast path declined. Returns
/// whether the toml_parser path took the text (the scanner takes a subset of those).
fn same(text: &str) -> bool {
    let edit = toml_edit::Document::parse(text);
    let scanned = scan::document(text);
    let events::Outcome::Tree(fast) = events::document(text) else {
        assert!(
            scanned.is_none(),
            "scanner took what the events path declines:\n{text}"
        );
        return false;
    };
    let doc = match edit {
        Ok(doc) => doc,
        Err(e) => panic!("fast path accepted what toml_edit rejects ({e}):\n{text}"),
    };
    let want = convert::root(&doc);
    assert_eq!(fast, want, "trees differ for:\n{text}");
    if let Some(scanned) = scanned {
        assert_eq!(scanned, want, "scanned tree differs for:\n{text}");
    }
    true
}

fn corpus() -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut out = Vec::new();
    for sub in ["valid", "invalid"] {
        for e in std::fs::read_dir(dir.join(sub)).expect("corpus dir") {
            let path = e.expect("entry").path();
            if path.extension().is_some_and(|x| x == "toml") {
                let text = std::fs::read_to_string(&path).expect("corpus file");
                out.push((path.display().to_string(), text));
            }
        }
    }
    out
}

#[test]
fn corpus_files_give_the_same_tree() {
    for (name, text) in corpus() {
        let taken = same(&text);
        // Every valid file is of the shapes the fast paths are for.
        assert!(taken || !name.contains("/valid/"), "declined {name}");
        // The plain ones (all but the one written with inline tables) are the scanner's.
        let plain = name.contains("/valid/") && !name.contains("inline");
        assert!(
            !plain || scan::document(&text).is_some(),
            "not scanned: {name}"
        );
    }
}

/// Shapes around the edges of what the fast path takes: each either builds the same tree
/// or is declined.
const EDGES: &[&str] = &[
    "",
    "\u{feff}version = 1\n",
    "a = 1\r\nb = 'x'\r\n",
    "a.b.c = 1\na.b.d = 2\na.e = 3\n",
    "a.b = 1\n[a]\nc = 2\n",
    "[a]\nb.c = 1\n[a.b]\n",
    "[a.b]\nc = 1\n[a]\nd = 2\n",
    "[a]\n[a]\n",
    "[[a]]\n[a]\n",
    "[a]\n[[a]]\n",
    "[[a]]\nx = 1\n[[a]]\nx = 2\n[b]\n[[a]]\n",
    "a = []\n[[a]]\n",
    "a = 1\na = 2\n",
    "\"a\" = 1\na = 2\n",
    "'a b' = 1\n\"c\\u00e9\" = 2\n",
    "s = \"a\\tb\\u00e9\"\nl = 'C:\\x'\nm = \"\"\"\nx\\\n  y\"\"\"\nn = '''\nz'''\n",
    "i = [0x1f, 0o17, 0b101, 1_000, -5, +7]\n",
    "big = 9223372036854775808\n",
    "f = 1.5\n",
    "d = 1979-05-27\n",
    "b = [true, false]\n",
    "t = { a = 1, b = { c = [1, { d = 2 }] } }\n",
    "t = { a.b = 1 }\n",
    "t = { a = 1, a = 2 }\n",
    "t = { a = 1 }\n[t]\n",
    "t = { a = 1 }\nt.b = 2\n",
    "arr = [ [1, 2], [\"a\"], [], [[]] ]\n",
    "a = [\n  1, # one\n  2,\n]\n# end",
    "[ x . y ]\n",
    "[ x ]\n[\"y\"]\n['z']\n",
    "k = \"unterminated\n",
    "k = \"bad \\q escape\"\n",
    "= 1\n",
    "a = 1 b = 2\n",
    "[[hosts]]\nname = \"a\"\n[hosts.sub]\nx = 1\n",
    "zones = { a = [\"10.0.0.0/8\"] }\n[zones]\n",
    "c = \"\u{7f}\"\n",
    "# comment \u{0} with nul\n",
];

#[test]
fn edge_cases_give_the_same_tree_or_fall_back() {
    for text in EDGES {
        same(text);
    }
}

#[test]
fn a_large_zone_table_is_indexed_and_the_same() {
    let mut text = String::from("[zones]\n");
    for i in 0..100 {
        text += &format!("z{i} = [\"10.{i}.0.0/16\"]\n");
    }
    text += "z7 = []\n";
    assert!(!same(&text), "a duplicate zone goes to toml_edit");
    let text = text.trim_end_matches("z7 = []\n");
    assert!(same(text));
}

/// The shape of a generated 10k-host file, small: the scanner takes it, identically.
#[test]
fn a_generated_policy_is_scanned_the_same() {
    let n = 300;
    let to: Vec<String> = (1..n).map(|i| format!("\"host:h{i}\"")).collect();
    let mut text = format!(
        "version = 1\n\n[[exemptions]]\nname = \"icmp\"\nprotocol = \"icmp\"\n\n[[rules]]\nname = \"hub\"\nfrom = [\"host:h0\"]\nto = [{}]\naction = \"require\"\n",
        to.join(", ")
    );
    for i in 0..n {
        text += &format!(
            "\n[[hosts]]\nname = \"h{i}\"\naddresses = [\"10.{}.{}.1\"]\npublic-key = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n",
            i / 256,
            i % 256
        );
    }
    let doc = toml_edit::Document::parse(text.as_str()).expect("valid TOML");
    assert_eq!(scan::document(&text), Some(convert::root(&doc)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Text close to the scanner's subset, with the odd byte outside it.
    #[test]
    fn plain_toml_text(text in "(( ?[a-z0-9_-]{1,4} ?= ?(\"[ -~]{0,6}\"|[0-9]{1,3}|true|false|\\[ ?(\"[a-z ]{0,3}\"|[0-9]{1,2}|\\[\\])?( ?, ?[0-9]{1,2}){0,2} ?,?\r?\n? ?\\]) ?(#[ -~]{0,4})?|\\[\\[? ?[a-z]{1,3} ?\\]\\]?|#[ -~]{0,5}| ?)\r?\n){0,10}") {
        same(&text);
    }

    #[test]
    fn toml_like_text(text in "([a-z\\.\"]{1,6} ?= ?(\"[ -~]{0,8}\"|'[ -~]{0,6}'|[0-9_xob\\.+-]{1,5}|true|\\[[ -~]{0,16}\\]|\\{[ -~]{0,16}\\})[ #a-z]{0,3}\r?\n|\\[\\[?[a-z\\. \"]{1,6}\\]\\]?\n|#[ -~]{0,5}\n){0,10}"
    ) {
        same(&text);
    }

    #[test]
    fn edited_corpus_files(i in 0usize..64, at in any::<usize>(), cut in 0usize..12, ins in "[ -~\\n]{0,6}") {
        let files = corpus();
        let (_, text) = &files[i % files.len()];
        let mut a = at % (text.len() + 1);
        while !text.is_char_boundary(a) {
            a -= 1;
        }
        let mut b = (a + cut).min(text.len());
        while !text.is_char_boundary(b) {
            b -= 1;
        }
        same(&format!("{}{ins}{}", &text[..a], &text[b..]));
    }
}

/// The label's fast path writes exactly what `{:?}` would.
#[test]
fn labels_match_debug_formatting() {
    for name in [
        "web", "a b", "it's", "q\"x", "b\\s", "tab\t", "é", "", "x\u{7f}",
    ] {
        for i in [0, 3, 10, 999, 12345, usize::MAX] {
            let want = format!("rules[{i}] {name:?}");
            assert_eq!(super::label(&crate::fields::RULE, i, Some(name)), want);
        }
    }
}
