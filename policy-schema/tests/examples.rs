//! Every policy in examples/ loads without errors (warnings allowed: some show them off).

#[test]
fn every_example_loads() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut n = 0;
    for e in std::fs::read_dir(dir).expect("examples/") {
        let path = e.expect("entry").path();
        if path.extension().is_some_and(|x| x == "toml") {
            if let Err(d) = policy_schema::load_path(&path) {
                panic!("{}:\n{d}", path.display());
            }
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} examples found");
}

#[test]
fn the_ike_example_admits_corp_holders_to_the_intranet_only() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/ike-any-host.toml");
    let p = policy_schema::load_path(std::path::Path::new(path))
        .expect("valid")
        .policy;
    let corp = p
        .rules
        .iter()
        .find(|r| r.name == "corp-hosts")
        .expect("rule");
    assert_eq!(corp.admits.from, ["corp"]);
    assert!(corp.admits.to.is_empty(), "{:?}", corp.admits);
    assert_eq!(
        p.admission_summary()[1],
        "rule corp-hosts: from [ca:corp] inventory (static keys) + ca:corp holders (IKEv2) | to [zone:intranet] inventory (static keys)"
    );
}
