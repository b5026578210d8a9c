//! `xfrm-agent completions SHELL` and the hidden `xfrm-agent manpages DIR`: both generated
//! from the same clap definition as the parser, so they cannot drift from the commands.

use std::io::Write as _;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use super::Cli;

/// The shells `completions` writes a script for.
#[derive(Clone, Copy, Debug, clap::ValueEnum, PartialEq, Eq)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Print SHELL's completion script for xfrm-agent on stdout.
pub fn run_completions(shell: Shell) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    write_completions(shell, &mut out);
    std::io::stdout().write_all(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// SHELL's completion script, written to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    let mut cmd = Cli::command();
    let name = cmd.get_name().to_string();
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut cmd, name, out);
}

/// Write `xfrm-agent.1` and one `xfrm-agent-COMMAND.1` per visible subcommand into `dir`,
/// and list them on stdout.
pub fn run_manpages(dir: &Path) -> anyhow::Result<ExitCode> {
    write_manpages(dir)?;
    let mut pages: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .collect();
    pages.sort();
    for p in pages {
        println!("{}", p.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// The man pages, as `clap_mangen` names them (`xfrm-agent-status.1`), hidden commands left out.
pub fn write_manpages(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .with_context(|| format!("writing man pages into {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shell_gets_a_script_naming_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut out = Vec::new();
            write_completions(shell, &mut out);
            let text = String::from_utf8(out).unwrap();
            for word in ["xfrm-agent", "keygen", "status", "config"] {
                assert!(text.contains(word), "{shell:?} script lacks {word}");
            }
        }
    }

    #[test]
    fn a_page_per_visible_command() {
        let dir = std::env::temp_dir().join(format!("xfrm-agent-man-{}", std::process::id()));
        write_manpages(&dir).unwrap();
        let page = |n: &str| std::fs::read_to_string(dir.join(n));
        let main = page("xfrm-agent.1").unwrap();
        assert!(
            main.contains(".TH xfrm-agent 1"),
            "{}",
            &main[..80.min(main.len())]
        );
        assert!(
            main.contains("xfrm\\-agent\\-status(1)"),
            "no SUBCOMMANDS list"
        );
        assert!(page("xfrm-agent-run.1").unwrap().contains("\\-\\-metrics"));
        assert!(
            page("xfrm-agent-manpages.1").is_err(),
            "a page for a hidden command"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
