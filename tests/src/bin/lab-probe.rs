//! Traffic inside a lab host (run with `ip netns exec HOST` or `vagrant ssh HOST -c`).
//!
//!   lab-probe serve --addr ADDR... [--tcp P,P] [--udp P,P] [--freebind]
//!                                      echo until stdin closes
//!   lab-probe run                      a JSON Batch on stdin → results
//!   lab-probe stream --src A --dst B --port P --rate N [--linger-ms M]
//!                                      numbered UDP datagrams to an echo until stdin
//!                                      closes; prints "streaming", then a JSON report
//!   lab-probe announce DEV ADDR        announce ADDR on DEV: one gratuitous ARP (IPv4) or
//!                                      unsolicited Neighbor Advertisement (IPv6)

use std::io::{Read, Write};
use std::net::IpAddr;
use std::process::ExitCode;

use e2e::{garp, probe, stream};

fn ports(s: &str) -> Result<Vec<u16>, String> {
    s.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().map_err(|e| format!("port {p}: {e}")))
        .collect()
}

fn serve(args: &[String]) -> Result<(), String> {
    let (mut addrs, mut tcp, mut udp) = (Vec::<IpAddr>::new(), vec![], vec![]);
    let mut freebind = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--freebind" {
            freebind = true;
            continue;
        }
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--addr" => addrs.push(v.parse().map_err(|e| format!("address {v}: {e}"))?),
            "--tcp" => tcp = ports(v)?,
            "--udp" => udp = ports(v)?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    probe::serve(&addrs, &tcp, &udp, freebind, std::io::stdin().lock())
        .map_err(|e| format!("serve: {e}"))
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

fn stream(args: &[String]) -> Result<(), String> {
    let mut spec = stream::Spec {
        src: IpAddr::from([0, 0, 0, 0]),
        dst: IpAddr::from([0, 0, 0, 0]),
        port: 0,
        rate: 100,
        linger_ms: 1000,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let v = it.next().ok_or(format!("{a} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{a} {v}: {e}");
        match a.as_str() {
            "--src" => spec.src = v.parse().map_err(|e| bad(&e))?,
            "--dst" => spec.dst = v.parse().map_err(|e| bad(&e))?,
            "--port" => spec.port = v.parse().map_err(|e| bad(&e))?,
            "--rate" => spec.rate = v.parse().map_err(|e| bad(&e))?,
            "--linger-ms" => spec.linger_ms = v.parse().map_err(|e| bad(&e))?,
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if spec.port == 0 || spec.dst.is_unspecified() {
        return Err("stream needs --src, --dst and --port".into());
    }
    let started = || {
        println!("streaming");
        let _ = std::io::stdout().flush();
    };
    let stdin = std::io::BufReader::new(std::io::stdin());
    let report = stream::run(&spec, stdin, started).map_err(|e| format!("stream: {e}"))?;
    println!(
        "{}",
        serde_json::to_string(&report).map_err(|e| e.to_string())?
    );
    Ok(())
}

fn announce(args: &[String]) -> Result<(), String> {
    let [dev, addr] = args else {
        return Err("usage: lab-probe announce DEV ADDRESS".into());
    };
    let addr = addr.parse().map_err(|e| format!("address {addr}: {e}"))?;
    garp::announce(dev, addr).map_err(|e| format!("announcing on {dev}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let r = match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("run") => run(),
        Some("stream") => stream(&args[1..]),
        Some("announce") => announce(&args[1..]),
        _ => Err(
            "usage: lab-probe serve --addr ADDR [--tcp P,P] [--udp P,P] [--freebind] | run | stream … | announce DEV ADDR"
                .into(),
        ),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lab-probe: {e}");
            ExitCode::from(2)
        }
    }
}
