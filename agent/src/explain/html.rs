//! The matrix as one self-contained HTML page: inline CSS, no script, no external asset.
//! Each cell's tooltip gives the deciding entries and the reason for every sample.

use std::fmt::Write as _;

use super::matrix::{Cell, Grid, Matrix};
use super::Transport;

const STYLE: &str = "
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 4px}
p.note{color:#555;margin:0 0 12px;max-width:70em}
.grids{display:flex;flex-wrap:wrap;gap:20px}
table{border-collapse:collapse}
caption{font-weight:600;text-align:left;padding:0 0 4px;font-family:ui-monospace,monospace}
caption small{font-weight:400;color:#666;font-family:system-ui,sans-serif;margin-left:6px}
th,td{border:1px solid #d0d5da;padding:4px 8px;text-align:center;white-space:nowrap}
th{background:#f3f5f7;font-weight:600}
th.corner{font-weight:400;color:#666;font-size:12px}
td{font-family:ui-monospace,monospace;font-size:13px;cursor:help}
td.self{background:#fafafa;color:#bbb;cursor:default}
.esp{background:#c9ecd1;color:#0b4f1c}
.esp-in-udp{background:#c8e6f5;color:#0b3e5c}
.clear{background:#fff1c2;color:#5c4400}
.dropped{background:#f8cfcf;color:#6b0f0f}
.mixed{background:#fff}
td.mixed span{display:inline-block;padding:0 4px;margin:0 1px;border-radius:3px}
.legend span{display:inline-block;padding:2px 10px;margin-right:8px;border:1px solid #d0d5da}
";

/// The whole page; `title` names the policy file.
pub fn render(m: &Matrix, title: &str) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>xfrm-agent matrix: {t}</title><style>{STYLE}</style></head><body>\n\
         <h1>What {t} does to traffic</h1>\n\
         <p class=\"note\">Rows open the connection (or ping), columns answer. Hover a cell \
         for the deciding rule or exemption and the reason.</p>\n<p class=\"legend\">",
        t = esc(title)
    );
    for t in [
        Transport::Esp,
        Transport::EspInUdp,
        Transport::Clear,
        Transport::Dropped,
    ] {
        let _ = write!(out, "<span class=\"{0}\">{0}</span>", t.as_str());
    }
    out.push_str(
        "</p>\n<p class=\"note\">A cell with several outcomes: its samples differ (IPv4 \
         and IPv6, or a zone's members and its other addresses). One cell's reasoning, \
         both directions: <code>xfrm-agent explain -c FILE --from A --to B --proto P \
         --port N</code>.</p>\n",
    );
    section(&mut out, m, &m.hosts, "Hosts", "");
    section(
        &mut out,
        m,
        &m.zones,
        "Zones",
        "Each zone stands for its members and one other address in it; \
         <em>elsewhere</em> for addresses outside every zone.",
    );
    out.push_str("</body></html>\n");
    out
}

fn section(out: &mut String, m: &Matrix, g: &Grid, heading: &str, note: &str) {
    let _ = writeln!(out, "<h2>{heading}</h2>");
    if !note.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">{note}</p>");
    }
    out.push_str("<div class=\"grids\">\n");
    for (k, svc) in m.services.iter().enumerate() {
        let note = &m.notes[k];
        let note = if note.is_empty() {
            String::new()
        } else {
            format!("<small>{}</small>", esc(note))
        };
        let _ = write!(
            out,
            "<table><caption>{}{note}</caption><tr><th class=\"corner\">from \\ to</th>",
            esc(&svc.to_string())
        );
        for name in &g.names {
            let _ = write!(out, "<th>{}</th>", esc(name));
        }
        out.push_str("</tr>\n");
        for (i, name) in g.names.iter().enumerate() {
            let _ = write!(out, "<tr><th>{}</th>", esc(name));
            for j in 0..g.names.len() {
                cell(out, g.cell(i, j, k));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</table>\n");
    }
    out.push_str("</div>\n");
}

fn cell(out: &mut String, c: &Cell) {
    if c.samples.is_empty() {
        out.push_str("<td class=\"self\">&middot;</td>");
        return;
    }
    let (class, body) = match c.outcomes.as_slice() {
        [t] => (t.as_str(), esc(t.as_str())),
        many => {
            let chips: Vec<String> = (many.iter())
                .map(|t| format!("<span class=\"{0}\">{0}</span>", t.as_str()))
                .collect();
            ("mixed", chips.join(""))
        }
    };
    let tip: Vec<String> = c
        .samples
        .iter()
        .map(|s| {
            format!(
                "{} {} → {} ({} → {}): {}. {}",
                s.family,
                s.src,
                s.dst,
                s.src_addr,
                s.dst_addr,
                s.outcome.as_str(),
                s.reason
            )
        })
        .collect();
    let _ = write!(
        out,
        "<td class=\"{class}\" title=\"{}\">{body}</td>",
        esc(&tip.join("\n")),
    );
}

/// Escape text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
