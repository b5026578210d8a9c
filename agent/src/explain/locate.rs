//! Where each rule and exemption sits in the policy file, so an explanation can say
//! `policy.toml:62`. The validated model keeps no positions; names are unique within their
//! kind, so the line that names the entry is found in the text itself.

use policy_schema::Policy;

/// `file:line` of every rule and exemption (None where the text did not show it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locations {
    file: String,
    rules: Vec<Option<usize>>,
    exemptions: Vec<Option<usize>>,
}

/// Which array of tables a line is in.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Rules,
    Exemptions,
    Other,
}

impl Locations {
    /// No positions (the entries are then named without `file:line`).
    pub fn none() -> Locations {
        Locations::default()
    }

    /// Find the entries of `policy` in `text`, the file it was loaded from as `file`.
    pub fn scan(file: &str, text: &str, policy: &Policy) -> Locations {
        let mut found: Vec<(Section, String, usize)> = Vec::new();
        let mut section = Section::Other;
        for (i, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("").trim();
            if let Some(s) = section_of(code) {
                section = s;
            }
            if section == Section::Other {
                continue;
            }
            for name in names_in(code) {
                found.push((section, name, i + 1));
            }
        }
        let line_of = |sec: Section, name: &str| {
            (found.iter())
                .find(|(s, n, _)| *s == sec && n == name)
                .map(|f| f.2)
        };
        Locations {
            file: file.to_string(),
            rules: (policy.rules.iter())
                .map(|r| line_of(Section::Rules, &r.name))
                .collect(),
            exemptions: (policy.exemptions.iter())
                .map(|x| line_of(Section::Exemptions, &x.name))
                .collect(),
        }
    }

    /// `file:line` of rule `j`.
    pub fn rule(&self, j: usize) -> Option<String> {
        self.at(self.rules.get(j).copied().flatten())
    }

    /// `file:line` of exemption `i`.
    pub fn exemption(&self, i: usize) -> Option<String> {
        self.at(self.exemptions.get(i).copied().flatten())
    }

    fn at(&self, line: Option<usize>) -> Option<String> {
        line.map(|l| format!("{}:{l}", self.file))
    }
}

/// The section a line opens: `[[rules]]`, `rules = [` (inline), another table.
fn section_of(code: &str) -> Option<Section> {
    let key = |k: &str| {
        code.strip_prefix(k)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    };
    if code.starts_with('[') {
        let name: String = code
            .chars()
            .filter(|c| !matches!(c, '[' | ']' | ' '))
            .collect();
        return Some(match name.as_str() {
            "rules" => Section::Rules,
            "exemptions" => Section::Exemptions,
            _ => Section::Other,
        });
    }
    if key("rules") {
        Some(Section::Rules)
    } else if key("exemptions") {
        Some(Section::Exemptions)
    } else if ["zones", "hosts", "clusters", "defaults", "ownership"]
        .iter()
        .any(|k| key(k))
    {
        Some(Section::Other)
    } else {
        None
    }
}

/// Every `name = "X"` on a line (inline tables may hold several).
fn names_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("name") {
        let before = rest[..at].chars().last();
        let after = rest[at + 4..].trim_start();
        rest = &rest[at + 4..];
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_') {
            continue;
        }
        let Some(value) = after.strip_prefix('=') else {
            continue;
        };
        let value = value.trim_start();
        let Some(quoted) = value.strip_prefix('"').or_else(|| value.strip_prefix('\'')) else {
            continue;
        };
        if let Some(end) = quoted.find(['"', '\'']) {
            out.push(quoted[..end].to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"version = 1
[[hosts]]
name = "web"
[[exemptions]]
name = "icmp"   # ping
protocol = "icmp"
[[rules]]
name = "web"
from = ["any"]
exemptions = [{ name = "dhcp", protocol = "udp" }]
"#;

    #[test]
    fn finds_entries_by_kind_not_by_name_alone() {
        use crate::plan::testkit::{exemption, seed};
        let mut p = seed();
        p.rules[0].name = "web".into();
        p.exemptions = ["icmp", "dhcp", "missing"]
            .iter()
            .map(|n| exemption(n, policy_schema::Protocol::Icmp, &[]))
            .collect();
        let l = Locations::scan("p.toml", TEXT, &p);
        assert_eq!(l.rule(0).as_deref(), Some("p.toml:8"));
        assert_eq!(l.exemption(0).as_deref(), Some("p.toml:5"));
        assert_eq!(l.exemption(1).as_deref(), Some("p.toml:10"));
        assert_eq!(l.exemption(2), None);
        assert_eq!(Locations::none().rule(0), None);
    }
}
