//! Hostile text in a file never makes a hostile message: a 10 MB name is cut, invisible
//! characters are spelled out (in labels and values alike), and no message takes long.

fn errors(text: &str) -> Vec<String> {
    match policy_schema::load("hostile.toml", text) {
        Ok(_) => panic!("loaded"),
        Err(d) => d.errors().map(|d| d.to_string()).collect(),
    }
}

#[test]
fn a_10_mb_name_is_cut_in_every_message() {
    let big = "x".repeat(10_000_000);
    let host = |addr: &str| {
        format!("[[hosts]]\nname = \"{big}\"\naddresses = [\"{addr}\"]\npublic-key = \"AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=\"\n")
    };
    let text = format!(
        "version = 1\n[zones]\n{big} = [\"10.0.0.0/8\"]\n{}{}[[rules]]\nname = \"r\"\nfrom = [\"host:{big}\", \"zone:{big}x\"]\nto = [\"any\"]\naction = \"require\"\nx{big} = 1\n",
        host("10.0.0.1"),
        host("10.0.0.1"),
    );
    let errs = errors(&text);
    assert!(errs.len() >= 4, "{errs:?}");
    for e in &errs {
        assert!(e.len() < 600, "{} bytes: {}…", e.len(), &e[..300]);
    }
}

#[test]
fn invisible_characters_are_spelled_out_in_labels_and_values() {
    let text = "version = 1\n[[rules]]\nname = \"a\u{202e}b\"\nfrom = [\"10.0.0.\u{200b}1\"]\nto = [\"any\"]\naction = \"require\"\n";
    let errs = errors(text);
    assert!(!errs.is_empty());
    for e in &errs {
        assert!(!e.contains(['\u{202e}', '\u{200b}']), "{e}");
    }
    assert!(errs.iter().any(|e| e.contains("\\u{200b}")), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("\"a\\u{202e}b\"")),
        "{errs:?}"
    );
}
