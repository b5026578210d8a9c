//! `xfrm-agent explain` and `xfrm-agent matrix` as a user runs them: on the example files,
//! without root, with their formats and their errors.

use std::path::PathBuf;
use std::process::{Command, Output};

const AGENT: &str = env!("CARGO_BIN_EXE_xfrm-agent");

fn example(name: &str) -> String {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    root.join("examples").join(name).display().to_string()
}

fn run(args: &[&str]) -> Output {
    // stdout is a pipe here: the table must come out without colour codes.
    Command::new(AGENT)
        .args(args)
        .output()
        .expect("run xfrm-agent")
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn explain_names_the_rule_its_line_and_both_directions() {
    let f = example("dual-stack.toml");
    let args = ["explain", "-c", &f, "--from", "10.30.0.30", "--to", "db"];
    let out = stdout(&run(
        &[&args[..], &["--proto", "tcp", "--port", "443"]].concat()
    ));
    assert!(out.starts_with("10.30.0.30 (no key) -> db (10.10.0.11) tcp/443: dropped\n"));
    assert!(out.contains("rule intranet-isolation (") && out.contains("dual-stack.toml:70)"));
    assert!(
        out.contains("forward  dropped     db requires ESP"),
        "{out}"
    );
    assert!(
        out.contains("reply    dropped     db requires ESP"),
        "{out}"
    );
    let json = stdout(&run(&[&args[..], &["--proto", "icmp", "--json"]].concat()));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v[0]["outcome"], "clear");
    assert_eq!(v[0]["dst"]["decider"]["name"], "icmp-diagnostics");
}

#[test]
fn explain_refuses_what_it_cannot_explain_with_one_clear_line() {
    let f = example("dual-stack.toml");
    for (args, says) in [
        (
            vec!["--from", "client", "--to", "db"],
            "\"client\" is neither an address",
        ),
        (
            vec!["--from", "site", "--to", "db", "--proto", "tcp"],
            "has ports",
        ),
        (
            vec![
                "--from", "site", "--to", "db", "--proto", "icmp", "--port", "8",
            ],
            "no ports",
        ),
        (
            vec!["--from", "10.10.0.10", "--to", "fd00:10::11"],
            "share no address family",
        ),
    ] {
        let o = run(&[&["explain", "-c", f.as_str()][..], &args].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    let o = run(&[
        "explain",
        "-c",
        "/nonexistent.toml",
        "--from",
        "a",
        "--to",
        "b",
    ]);
    assert!(!o.status.success());
}

#[test]
fn matrix_formats_plain_table_json_and_self_contained_html() {
    let f = example("seed-site-dmz.toml");
    let table = stdout(&run(&[
        "matrix",
        "-c",
        &f,
        "--endpoint",
        "client=10.30.0.30",
    ]));
    assert!(
        !table.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert!(
        table.contains("tcp/443 (no ports list names it)"),
        "{table}"
    );
    let client_row = (table.lines())
        .skip_while(|l| !l.starts_with("tcp/443"))
        .find(|l| l.starts_with("client"))
        .unwrap();
    let words: Vec<&str> = client_row.split_whitespace().collect();
    assert_eq!(words, ["client", "dropped", "dropped", "clear", "-"]);

    let json = stdout(&run(&[
        "matrix",
        "-c",
        &f,
        "--format",
        "json",
        "--proto",
        "icmp,tcp/443",
    ]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["services"], serde_json::json!(["icmp", "tcp/443"]));
    assert_eq!(v["hosts"]["names"], serde_json::json!(["site", "db", "mp"]));
    assert_eq!(v["hosts"]["cells"].as_array().unwrap().len(), 3 * 3 * 2);

    let html = stdout(&run(&["matrix", "-c", &f, "--format", "html"]));
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for external in ["src=", "href=", "<script", "@import", "url("] {
        assert!(
            !html.contains(external),
            "the page loads nothing: found {external}"
        );
    }
    assert!(html.contains("<td class=\"esp-in-udp\""));
}

#[test]
fn matrix_html_escapes_names_it_is_given() {
    // An endpoint name (or file name) is the one free text on the page: it must stay text.
    let f = example("seed-site-dmz.toml");
    let evil = "<script>alert(1)</script>\"'&=10.30.0.30";
    let html = stdout(&run(&[
        "matrix",
        "-c",
        &f,
        "--format",
        "html",
        "--endpoint",
        evil,
    ]));
    assert!(
        !html.contains("<script"),
        "markup from a name reached the page"
    );
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;&#39;&amp;"));
}
