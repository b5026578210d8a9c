//! `xfrm-agent check` and `xfrm-agent schema`.

use std::path::Path;
use std::process::ExitCode;

pub fn run(config: &Path, max_size: u64) -> anyhow::Result<ExitCode> {
    match policy_schema::load_path_limited(config, max_size) {
        Ok(loaded) => {
            crate::load::print_warnings(&loaded.warnings);
            let p = &loaded.policy;
            println!(
                "{}: valid ({} zones, {} hosts, {} clusters, {} exemptions, {} rules, {} warnings)",
                config.display(),
                p.zones.len(),
                p.hosts.len(),
                p.clusters.len(),
                p.exemptions.len(),
                p.rules.len(),
                loaded.warnings.len()
            );
            // Who is admitted beyond the inventory, and how SAs are keyed (docs/ike.md).
            for line in p.admission_summary() {
                println!("  {line}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(diags) => {
            eprintln!("{diags}");
            let n = diags.errors().count();
            eprintln!(
                "{}: invalid ({n} error{})",
                config.display(),
                if n == 1 { "" } else { "s" }
            );
            Ok(ExitCode::from(1))
        }
    }
}

pub fn run_schema() -> anyhow::Result<ExitCode> {
    println!(
        "{}",
        serde_json::to_string_pretty(&policy_schema::json_schema())?
    );
    Ok(ExitCode::SUCCESS)
}
