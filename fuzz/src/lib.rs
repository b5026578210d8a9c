//! Fuzz targets of xfrm-agent: each takes any bytes and panics only when something that
//! must hold does not (a crash, or a checked property). The AFL++ harness (`src/main.rs`,
//! run by `scripts/fuzz`) and the regression replay (`tests/regressions.rs`, a plain
//! `cargo test`) call the same functions.
//!
//! A new target is one file in `src/targets/` with a `pub fn run(data: &[u8])`, named once
//! in [`TARGETS`], and a seed folder `corpus/NAME/`.

pub mod seeds;
pub mod targets;

/// One fuzz target: a name (the corpus folder too) and what it checks of one input.
pub struct Target {
    pub name: &'static str,
    pub about: &'static str,
    pub run: fn(&[u8]),
}

/// Every target, in the order `scripts/fuzz all` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "policy",
        about: "policy_schema::load: located diagnostics, errors iff it fails, model invariants",
        run: targets::policy::run,
    },
    Target {
        name: "reload",
        about: "Reloader: a fuzzed file after a valid one and back gives what load gives",
        run: targets::reload::run,
    },
    Target {
        name: "netlink",
        about: "XFRM and address netlink decoders: events agree with dumps, re-encode round trip",
        run: targets::netlink::run,
    },
    Target {
        name: "keys",
        about: "host key file and public key parsers: canonical round trip, policy agrees",
        run: targets::keys::run,
    },
    Target {
        name: "ike",
        about: "IKEv2 message decoder: a decoded message re-encodes to the same message",
        run: targets::ike::run,
    },
];

/// The target of this name.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
