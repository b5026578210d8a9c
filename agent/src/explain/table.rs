//! The matrix as text: one grid per service (rows: who opens, columns: who answers), in
//! colour on a terminal and plain otherwise.

use std::fmt::Write as _;

use super::matrix::{Cell, Grid, Matrix};
use super::Transport;

/// ANSI colour of an outcome (green ESP, cyan ESP-in-UDP, yellow clear, red dropped).
fn colour(t: Transport) -> &'static str {
    match t {
        Transport::Esp => "\x1b[32m",
        Transport::EspInUdp => "\x1b[36m",
        Transport::Clear => "\x1b[33m",
        Transport::Dropped => "\x1b[31m",
    }
}

const RESET: &str = "\x1b[0m";
/// After a cell keyed over IKEv2.
const IKE_MARK: &str = "+ike";
/// Mixed cells (the samples differ): magenta.
const MIXED: &str = "\x1b[35m";

/// The whole matrix; `ansi` colours the cells.
pub fn render(m: &Matrix, ansi: bool) -> String {
    let mut out = String::new();
    let services: Vec<String> = m.services.iter().map(|s| s.to_string()).collect();
    let _ = writeln!(
        out,
        "Hosts: the row opens the connection (or pings), the column answers.\n"
    );
    for (k, svc) in services.iter().enumerate() {
        grid(&mut out, &m.hosts, k, &caption(svc, &m.notes[k]), ansi);
    }
    let _ = writeln!(
        out,
        "Zones: each zone's members and one other address in it; \"elsewhere\": outside \
         every zone. a/b: the samples differ.\n"
    );
    for (k, svc) in services.iter().enumerate() {
        grid(&mut out, &m.zones, k, &caption(svc, &m.notes[k]), ansi);
    }
    let legend = [
        Transport::Esp,
        Transport::EspInUdp,
        Transport::Clear,
        Transport::Dropped,
    ]
    .map(|t| paint(t.as_str(), Some(t), ansi));
    let _ = writeln!(out, "{}", legend.join("  "));
    if m.hosts.cells.iter().chain(&m.zones.cells).any(Cell::ikev2) {
        let _ = writeln!(
            out,
            "{IKE_MARK}: keyed over IKEv2 (certificates), else static keys"
        );
    }
    // Padding of a row's last column is noise in a file or a diff.
    out.lines()
        .map(|l| l.trim_end().to_string() + "\n")
        .collect()
}

/// `tcp/443 (no ports list names it)`.
fn caption(svc: &str, note: &str) -> String {
    if note.is_empty() {
        svc.to_string()
    } else {
        format!("{svc} ({note})")
    }
}

/// One service's grid, under its caption.
fn grid(out: &mut String, g: &Grid, k: usize, service: &str, ansi: bool) {
    let n = g.names.len();
    let _ = writeln!(out, "{service}");
    let corner = "from \\ to";
    let label_w = (g.names.iter().map(|s| s.len()))
        .chain([corner.len()])
        .max()
        .unwrap_or(0);
    let col_w: Vec<usize> = (0..n)
        .map(|j| {
            (0..n)
                .map(|i| label(g.cell(i, j, k)).len())
                .chain([g.names[j].len()])
                .max()
                .unwrap_or(1)
        })
        .collect();
    let _ = write!(out, "{corner:<label_w$}");
    for (j, name) in g.names.iter().enumerate() {
        let _ = write!(out, "  {name:<w$}", w = col_w[j]);
    }
    out.push('\n');
    for i in 0..n {
        let _ = write!(out, "{:<label_w$}", g.names[i]);
        for (j, w) in col_w.iter().enumerate() {
            let c = g.cell(i, j, k);
            let text = format!("{:<w$}", label(c));
            let _ = write!(out, "  {}", paint(&text, single(c), ansi));
        }
        out.push('\n');
    }
    out.push('\n');
}

/// A cell's text: its outcomes, marked when IKEv2 keys it.
fn label(c: &Cell) -> String {
    if c.ikev2() {
        format!("{}{IKE_MARK}", c.summary())
    } else {
        c.summary()
    }
}

/// The one outcome of a cell, or None when the samples differ (or there are none).
fn single(c: &Cell) -> Option<Transport> {
    match c.outcomes.as_slice() {
        [t] => Some(*t),
        _ => None,
    }
}

fn paint(text: &str, t: Option<Transport>, ansi: bool) -> String {
    if !ansi {
        return text.to_string();
    }
    match t {
        Some(t) => format!("{}{text}{RESET}", colour(t)),
        None if text.trim() == "-" => text.to_string(),
        None => format!("{MIXED}{text}{RESET}"),
    }
}
