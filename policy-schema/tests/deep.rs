//! Deeply nested input gives a located error and never overflows the stack. Each case runs
//! on a thread with a 256 KiB stack: if parsing, walking or dropping recursed once per
//! level, the process would abort here (a daemon replacing its policy would die).

fn load_on_small_stack(text: String) -> Vec<String> {
    load_on_stack(text, 256)
}

fn load_on_stack(text: String, kib: usize) -> Vec<String> {
    let t = std::thread::Builder::new().stack_size(kib * 1024);
    let run = move || match policy_schema::load("deep.toml", &text) {
        Ok(_) => panic!("a hostile nesting loaded"),
        Err(d) => d.0.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
    };
    t.spawn(run).unwrap().join().unwrap()
}

fn parts(n: usize) -> String {
    vec!["a"; n].join(".")
}

/// Column (1-based) of part `i` (from 1) of a dotted key starting at column `from`.
fn part_col(from: usize, i: usize) -> usize {
    from + 2 * (i - 1)
}

#[test]
fn deep_dotted_keys_are_refused_where_the_limit_is_crossed() {
    for n in [50_000, 300_000] {
        let errs = load_on_small_stack(format!("version = 1\n{} = 1\n", parts(n)));
        let at = format!(
            "deep.toml:2:{}: error: TOML: the key path passes 80 parts here",
            part_col(1, 81)
        );
        assert!(errs.len() == 1 && errs[0].starts_with(&at), "{n}: {errs:?}");
    }
}

#[test]
fn deep_table_headers_are_refused_where_the_limit_is_crossed() {
    for (n, open) in [(50_000, "["), (300_000, "[[")] {
        let close = if open == "[" { "]" } else { "]]" };
        let text = format!("version = 1\n{open}{}{close}\nx = 1\n", parts(n));
        let errs = load_on_small_stack(text);
        let at = format!(
            "deep.toml:2:{}: error: TOML: the key path passes",
            part_col(open.len() + 1, 81)
        );
        assert!(errs.len() == 1 && errs[0].starts_with(&at), "{n}: {errs:?}");
    }
}

/// Other errors first, or text the fast parsers leave to toml_edit (a float): the deep key
/// is still caught before toml_edit builds it (which would report it at 1:1).
#[test]
fn a_deep_key_after_other_problems_is_still_located() {
    for before in ["x = \"unterminated\n", "y = 1.5\n", "[hosts]\n[hosts]\n"] {
        let text = format!("version = 1\n{before}{} = 1\n", parts(50_000));
        let line = text.lines().count();
        let errs = load_on_small_stack(text);
        let at = format!(
            "deep.toml:{line}:{}: error: TOML: the key path passes",
            part_col(1, 81)
        );
        assert!(
            errs.iter().any(|e| e.starts_with(&at)),
            "{before:?}: {errs:?}"
        );
    }
}

/// Keys of nested inline tables count together; nested arrays hit the TOML parser's own
/// limit, located where it is crossed.
#[test]
fn nesting_through_inline_tables_and_arrays_is_bounded() {
    let k = parts(79);
    let inline = format!(
        "version = 1\ny = 1.5\nx = {}1{}\n",
        format!("{{{k} = ").repeat(70),
        "}".repeat(70)
    );
    let errs = load_on_small_stack(inline);
    assert!(
        errs.len() == 1 && errs[0].starts_with("deep.toml:3:"),
        "{errs:?}"
    );
    assert!(errs[0].contains("the key path passes 80 parts"), "{errs:?}");
    // The TOML parsers recurse per array level up to their limit of 80, which in a
    // debug build takes more than 256 KiB: the same 512 KiB hold 50,000 and 300,000.
    for n in [50_000, 300_000] {
        let arrays = format!("version = 1\nx = {}{}\n", "[".repeat(n), "]".repeat(n));
        let errs = load_on_stack(arrays, 512);
        assert!(
            errs.len() == 1 && errs[0].starts_with("deep.toml:2:85:"),
            "{errs:?}"
        );
    }
}

/// The limit leaves every real file alone: a key path of exactly 80 parts is only an
/// unknown key.
#[test]
fn eighty_parts_are_still_parsed() {
    let errs = load_on_small_stack(format!("version = 1\n{} = 1\n", parts(80)));
    assert!(
        errs.len() == 1 && errs[0].contains("unknown key \"a\""),
        "{errs:?}"
    );
}
