//! The matrix as a table: one row per ordered pair and family, one column per service;
//! each cell shows the expected outcome, and `expected≠observed` where they differ.

use std::fmt::Write;

use crate::matrix::{service_name, Cell, Observation, Verdict, SERVICES};
use crate::oracle::Outcome;

fn short(o: Option<Outcome>) -> &'static str {
    match o {
        Some(Outcome::Esp) => "esp",
        Some(Outcome::EspUdp) => "esp-udp",
        Some(Outcome::Clear) => "clear",
        Some(Outcome::Dropped) => "dropped",
        None => "??",
    }
}

/// The table, a legend, and one line per cell that did not pass.
pub fn render(cells: &[Cell], obs: &[Observation], verdicts: &[Verdict]) -> String {
    let mut out = String::new();
    let width = 17;
    let _ = write!(out, "{:<26}", "flow (family)");
    for (p, port) in SERVICES {
        let _ = write!(out, "{:<width$}", service_name(p, port));
    }
    out.push('\n');
    let mut row_key = None;
    for ((c, o), v) in cells.iter().zip(obs).zip(verdicts) {
        let key = (c.src.clone(), c.dst.clone(), c.family);
        if row_key.as_ref() != Some(&key) {
            if row_key.is_some() {
                out.push('\n');
            }
            let _ = write!(
                out,
                "{:<26}",
                format!("{} -> {} ({})", c.src, c.dst, c.family)
            );
            row_key = Some(key);
        }
        let text = match v {
            Verdict::Pass => short(Some(c.expect.outcome)).to_string(),
            Verdict::Fail(_) => format!("{}≠{}", short(Some(c.expect.outcome)), short(o.outcome)),
        };
        let _ = write!(out, "{text:<width$}");
    }
    out.push('\n');
    out.push_str("legend: expected outcome; a≠b expected a, observed b (FAIL)\n");
    for ((c, _), v) in cells.iter().zip(obs).zip(verdicts) {
        match v {
            Verdict::Pass => {}
            Verdict::Fail(why) => {
                let _ = writeln!(
                    out,
                    "FAIL: {} -> {} {} ({}) [{}]: {why}",
                    c.src,
                    c.dst,
                    c.service(),
                    c.family,
                    c.flow
                );
            }
        }
    }
    let pass = verdicts.iter().filter(|v| **v == Verdict::Pass).count();
    let _ = writeln!(
        out,
        "matrix: {} cells, {pass} pass, {} fail",
        verdicts.len(),
        verdicts.len() - pass
    );
    out
}
