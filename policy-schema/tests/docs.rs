//! The policy reference must not rot: every complete TOML example in it (a block starting
//! with `version = 1`) loads without errors or warnings.

#[test]
fn reference_examples_load_cleanly() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/policy-reference.md");
    let doc = std::fs::read_to_string(path).expect("docs/policy-reference.md");
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in doc.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```toml") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    let complete: Vec<&String> = blocks
        .iter()
        .filter(|b| b.starts_with("version = 1"))
        .collect();
    assert!(!complete.is_empty(), "no complete example found");
    for (i, block) in complete.iter().enumerate() {
        let name = format!("policy-reference.md example {i}");
        match policy_schema::load(&name, block) {
            Ok(l) => assert!(l.warnings.is_empty(), "{name}: {:?}", l.warnings),
            Err(d) => panic!("{name} does not load:\n{d}"),
        }
    }
}
