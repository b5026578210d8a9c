//! Loading never panics, whatever the text, and every diagnostic points inside the file;
//! whatever loads satisfies the invariants the compiler relies on.

use proptest::prelude::*;

use policy_schema::{load, Loaded};

const SEED: &str = include_str!("valid/full.toml");

#[path = "support/invariants.rs"]
mod invariants;
use invariants::{check_invariants, check_located};

fn run(text: &str) {
    match load("f.toml", text) {
        Ok(Loaded { policy, warnings }) => {
            check_located(text, &warnings);
            check_invariants(&policy);
        }
        Err(d) => {
            assert!(d.errors().count() > 0);
            check_located(text, &d.0);
        }
    }
}

fn boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// One edit of the seed file.
#[derive(Debug, Clone)]
enum Edit {
    Delete(usize, usize),
    Insert(usize, String),
    SwapLines(usize, usize),
    DuplicateLine(usize),
    ReplaceString(usize, String),
}

fn edit() -> impl Strategy<Value = Edit> {
    let snippet = prop_oneof![
        "[ -~]{0,12}",
        Just("\n[[rules]]\n".to_string()),
        Just("\"".to_string()),
        Just("= [".to_string()),
        Just("zone:".to_string()),
        Just("/24".to_string()),
        Just("0x".to_string()),
        Just("é".to_string()),
    ];
    prop_oneof![
        (any::<usize>(), 0usize..40).prop_map(|(a, n)| Edit::Delete(a, n)),
        (any::<usize>(), snippet.clone()).prop_map(|(a, s)| Edit::Insert(a, s)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapLines(a, b)),
        any::<usize>().prop_map(Edit::DuplicateLine),
        (any::<usize>(), snippet).prop_map(|(a, s)| Edit::ReplaceString(a, s)),
    ]
}

fn apply(text: &str, e: &Edit) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    match e {
        Edit::Delete(a, n) => {
            let a = boundary(text, a % (text.len() + 1));
            let b = boundary(text, a + n);
            format!("{}{}", &text[..a], &text[b..])
        }
        Edit::Insert(a, s) => {
            let a = boundary(text, a % (text.len() + 1));
            format!("{}{s}{}", &text[..a], &text[a..])
        }
        Edit::SwapLines(a, b) => {
            let n = lines.len();
            lines.swap(a % n, b % n);
            lines.join("\n")
        }
        Edit::DuplicateLine(a) => {
            let l = lines[a % lines.len()].clone();
            lines.insert(a % lines.len(), l);
            lines.join("\n")
        }
        Edit::ReplaceString(a, s) => {
            // Replace the contents of the n-th quoted string.
            let quotes: Vec<usize> = text.match_indices('"').map(|(i, _)| i).collect();
            if quotes.len() < 2 {
                return text.to_string();
            }
            let i = (a % (quotes.len() / 2)) * 2;
            format!("{}{s}{}", &text[..quotes[i] + 1], &text[quotes[i + 1]..])
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_text_never_panics(text in any::<String>()) {
        run(&text);
    }

    #[test]
    fn toml_like_text_never_panics(text in "([a-z\\-]{1,8} = (\"[ -~]{0,10}\"|[0-9]{1,6}|\\[[ -~]{0,20}\\])\n|\\[\\[?[a-z]{1,8}\\]\\]?\n){0,12}") {
        run(&text);
    }

    #[test]
    fn mutated_valid_files_never_panic(edits in proptest::collection::vec(edit(), 1..4)) {
        let mut text = SEED.to_string();
        for e in &edits {
            text = apply(&text, e);
        }
        run(&text);
    }
}

#[test]
fn the_seed_itself_loads() {
    let l = load("full.toml", SEED).expect("seed loads");
    check_invariants(&l.policy);
}
