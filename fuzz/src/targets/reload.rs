//! The `Reloader` promises the result `load` gives for the same text, whatever the last
//! good load was. One input is a base selector byte and a text: the valid base loads
//! first, then the fuzzed text reloads over it (its unchanged entries reused), then the
//! base again over whatever is in force (the reverse direction); each must equal a fresh
//! `load`, and the fuzzed result must pass the `policy` target's checks.

use policy_schema::{Diagnostics, Loaded, Policy, Reloader};

use super::policy::{check, FILE};

/// Valid files a fuzzed text reloads over; the input's first byte picks one. Seeds are
/// these files after their index byte, so mutations stay close to a base and reuse pieces.
pub const BASES: &[&str] = &[
    include_str!("../../../examples/seed-site-dmz.toml"),
    include_str!("../../../examples/dual-stack.toml"),
    include_str!("../../../examples/exchange-ports.toml"),
    include_str!("../../../examples/two-site-tunnel.toml"),
    include_str!("../../../policy-schema/tests/valid/full.toml"),
    include_str!("../../../policy-schema/tests/valid/inline-and-warnings.toml"),
];

/// Reload the fuzzed text over a valid base and back.
pub fn run(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let base = BASES[usize::from(pick) % BASES.len()];
    let mut reloader = Reloader::new();
    let good = reloader.load(FILE, base, None).expect("every base loads");
    let fuzzed = reloader.load(FILE, text, Some(&good.policy));
    same_as_load(text, &fuzzed);
    check(text, &fuzzed);
    let in_force: &Policy = fuzzed.as_ref().map_or(&good.policy, |l| &l.policy);
    // The same text again over its own result: everything unchanged may be reused.
    let again = reloader.load(FILE, text, Some(in_force));
    same_as_load(text, &again);
    let back = reloader.load(FILE, base, Some(in_force));
    same_as_load(base, &back);
}

fn same_as_load(text: &str, got: &Result<Loaded, Diagnostics>) {
    let want = policy_schema::load(FILE, text);
    match (got, &want) {
        (Ok(g), Ok(w)) => {
            assert_eq!(
                g.policy, w.policy,
                "reload and load build different policies"
            );
            assert_eq!(g.warnings, w.warnings, "reload and load warn differently");
        }
        (Err(g), Err(w)) => assert_eq!(g, w, "reload and load report different errors"),
        _ => panic!(
            "reload and load disagree: reload {}, load {}",
            verdict(got),
            verdict(&want)
        ),
    }
}

fn verdict(r: &Result<Loaded, Diagnostics>) -> String {
    match r {
        Ok(_) => "accepts".into(),
        Err(d) => format!("refuses ({d})"),
    }
}
