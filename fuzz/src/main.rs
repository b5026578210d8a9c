//! The AFL++ harness, built by `scripts/fuzz` under `cargo afl build`:
//!   xfrm-fuzz TARGET        run one target in AFL++'s persistent mode; outside AFL++ it
//!                           runs once on stdin (`xfrm-fuzz policy < crash` reproduces)
//!   xfrm-fuzz list          the targets, one a line
//!   xfrm-fuzz seeds DIR     write each target's generated seeds to DIR/TARGET/

use std::path::Path;

use xfrm_fuzz::{seeds, TARGETS};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["list"] => TARGETS
            .iter()
            .for_each(|t| println!("{}\t{}", t.name, t.about)),
        ["seeds", dir] => write_seeds(Path::new(dir)),
        [name] if xfrm_fuzz::target(name).is_some() => {
            let target = xfrm_fuzz::target(name).expect("checked");
            // Warm up before AFL++ forks its runs from this process: lazily set state
            // (OnceLock, caches) is then already set in every run, so one input takes
            // one path (a target's stability, 41% for `keys` without this).
            for (_, seed) in seeds::seeds(name) {
                (target.run)(&seed);
            }
            // No abort-on-panic hook: a panic the agent contains itself (decode::message
            // around the netlink crate) is not a crash; one that escapes a target still is.
            afl::fuzz_nohook!(|data: &[u8]| (target.run)(data));
        }
        _ => {
            eprintln!("usage: xfrm-fuzz TARGET | list | seeds DIR");
            std::process::exit(2);
        }
    }
}

fn write_seeds(dir: &Path) {
    for t in TARGETS {
        let d = dir.join(t.name);
        std::fs::create_dir_all(&d).expect("seed directory");
        for (name, data) in seeds::seeds(t.name) {
            std::fs::write(d.join(name), data).expect("seed written");
        }
    }
}
