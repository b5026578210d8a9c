//! Traffic inside a lab host (run with `ip netns exec HOST` or `vagrant ssh HOST -c`).
//!
//!   lab-probe serve --addr ADDR... [--tcp P,P] [--udp P,P]   echo until stdin closes
//!   lab-probe run                                            a JSON Batch on stdin → results

use std::io::Read;
use std::net::IpAddr;
use std::process::ExitCode;

use e2e::probe;

fn ports(s: &str) -> Result<Vec<u16>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|e| format!("port {p}: {e}")))
        .collect()
}

fn serve(args: &[String]) -> Result<(), String> {
    let (mut addrs, mut tcp, mut udp) = (Vec::<IpAddr>::new(), vec![], vec![]);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--addr" => addrs.push(v.parse().map_err(|e| format!("address {v}: {e}"))?),
            "--tcp" => tcp = ports(v)?,
            "--udp" => udp = ports(v)?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    probe::serve(&addrs, &tcp, &udp, std::io::stdin().lock()).map_err(|e| format!("serve: {e}"))
}

fn run() -> Result<(), String> {
    let mut input = String::new();
    std::io::stdin()
        .read_to_string(&mut input)
        .map_err(|e| e.to_string())?;
    let batch: probe::Batch = serde_json::from_str(&input).map_err(|e| format!("batch: {e}"))?;
    let results = probe::run_batch(&batch);
    println!(
        "{}",
        serde_json::to_string(&results).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("run") => run(),
        _ => {
            Err("usage: lab-probe serve --addr ADDR [--tcp P,P] [--udp P,P] | lab-probe run".into())
        }
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-probe: {e}");
            ExitCode::from(2)
        }
    }
}
