//! `load` of files with many rules, none of them shadowed (the shadowed-rule check once
//! made 10,000 rules take seconds): `cargo run --release -p policy-schema --example rules
//! [RULES...]` (default 10000 20000); `-- --write FILE N` writes one such file instead.

use std::time::{Duration, Instant};

use policy_schema::load;

const RUNS: usize = 5;

/// `n` rules in three shapes that never contain one another: host to host on a port,
/// subnet to subnet, and any to a host on a UDP port.
fn generate(n: usize) -> String {
    let mut s = String::from("version = 1\n");
    let addr =
        |net: usize, i: usize| format!("10.{}.{}.{}", net + i / 65536, (i / 256) % 256, i % 256);
    for i in 0..n {
        let (from, to, extra) = match i % 3 {
            0 => (
                addr(1, i),
                addr(1, i + 1),
                "protocol = \"tcp\"\nports = [443]\n",
            ),
            1 => (
                format!("{}.0/24", addr(40, i * 256).rsplit_once('.').unwrap().0),
                format!("{}.0/24", addr(80, i * 256).rsplit_once('.').unwrap().0),
                "",
            ),
            _ => (
                "any".into(),
                addr(20, i),
                "protocol = \"udp\"\nports = [53, \"5000-5100\"]\n",
            ),
        };
        s.push_str(&format!(
            "\n[[rules]]\nname = \"r{i}\"\nfrom = [\"{from}\"]\nto = [\"{to}\"]\n{extra}action = \"require\"\n"
        ));
    }
    s
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--write") {
        let n = args.get(2).and_then(|n| n.parse().ok()).unwrap_or(10_000);
        std::fs::write(&args[1], generate(n)).expect("write");
        return;
    }
    let sizes: Vec<usize> = match args.is_empty() {
        true => vec![10_000, 20_000],
        false => args.iter().map(|a| a.parse().expect("a number")).collect(),
    };
    println!("rules  load (median of {RUNS})  warnings");
    for n in sizes {
        let text = generate(n);
        let mut times = Vec::new();
        let mut warnings = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let loaded = load("rules.toml", &text).expect("the generated file loads");
            times.push(t.elapsed());
            warnings = loaded.warnings.len();
        }
        println!(
            "{n:>6}  {:>8.1} ms  {warnings}",
            median(times).as_secs_f64() * 1e3
        );
    }
}
