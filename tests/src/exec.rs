//! How a command reaches a lab host: `ip netns exec HOST …` in the namespace lab, `vagrant
//! ssh HOST -c …` against the Vagrant VMs. Everything the matrix does on a host goes
//! through this seam, so the same runner checks both labs.

use std::path::PathBuf;
use std::process::{Child, Command};

use anyhow::Context;

/// Runs commands on lab hosts.
pub trait Exec: Send + Sync {
    /// A command that runs `argv` as root inside `host`.
    fn command(&self, host: &str, argv: &[String]) -> Command;
    /// The lab-probe binary, as a path inside the hosts.
    fn probe_path(&self) -> String;
    /// A directory inside `host` for scratch files (captures).
    fn scratch_dir(&self) -> String;
    /// The bytes of a file inside `host`.
    fn read_file(&self, host: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        let out = self
            .command(host, &["cat".into(), path.into()])
            .output()
            .with_context(|| format!("reading {path} on {host}"))?;
        anyhow::ensure!(
            out.status.success(),
            "reading {path} on {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(out.stdout)
    }
    /// Send SIGINT to a process started with `command` that wrote its pid to `pidfile`.
    fn interrupt(&self, host: &str, child: &Child, pidfile: &str) -> anyhow::Result<()>;
}

/// The namespace lab: hosts are network namespaces of this machine.
pub struct Netns {
    pub probe: PathBuf,
    pub scratch: PathBuf,
}

impl Exec for Netns {
    fn command(&self, host: &str, argv: &[String]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", host]).args(argv);
        c
    }
    fn probe_path(&self) -> String {
        self.probe.display().to_string()
    }
    fn scratch_dir(&self) -> String {
        self.scratch.display().to_string()
    }
    fn read_file(&self, _host: &str, path: &str) -> anyhow::Result<Vec<u8>> {
        // Same filesystem: no process needed.
        std::fs::read(path).with_context(|| format!("reading {path}"))
    }
    fn interrupt(&self, _host: &str, child: &Child, _pidfile: &str) -> anyhow::Result<()> {
        // `ip netns exec` and `sh -c 'exec …'` both exec: the child's pid is the program's.
        // SAFETY: kill(2) on a pid we spawned and have not reaped yet.
        let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
        anyhow::ensure!(
            rc == 0,
            "kill -INT {}: {}",
            child.id(),
            std::io::Error::last_os_error()
        );
        Ok(())
    }
}

/// The Vagrant lab: hosts are VMs named after the topology's hosts.
pub struct Vagrant {
    /// The directory with the Vagrantfile.
    pub dir: PathBuf,
}

/// Single-quote for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

impl Exec for Vagrant {
    fn command(&self, host: &str, argv: &[String]) -> Command {
        let line: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
        let mut c = Command::new("vagrant");
        c.current_dir(&self.dir)
            .env("VAGRANT_CHECKPOINT_DISABLE", "1")
            .args([
                "ssh",
                host,
                "-c",
                &format!("sudo {}", line.join(" ")),
                "--",
                "-T",
                "-q",
            ]);
        c
    }
    fn probe_path(&self) -> String {
        "/usr/local/bin/lab-probe".into()
    }
    fn scratch_dir(&self) -> String {
        "/var/tmp".into()
    }
    fn interrupt(&self, host: &str, _child: &Child, pidfile: &str) -> anyhow::Result<()> {
        // Killing the local ssh would not reach the remote process: signal it there.
        let script = format!("kill -INT \"$(cat {})\"", shell_quote(pidfile));
        let st = self
            .command(host, &["sh".into(), "-c".into(), script])
            .status()?;
        anyhow::ensure!(st.success(), "interrupting the capture on {host}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_words_and_escapes_quotes() {
        assert_eq!(
            shell_quote("/usr/local/bin/lab-probe"),
            "/usr/local/bin/lab-probe"
        );
        assert_eq!(shell_quote("ip or ip6"), "'ip or ip6'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn netns_and_vagrant_commands_reach_the_host() {
        let n = Netns {
            probe: "/p".into(),
            scratch: "/s".into(),
        };
        let c = n.command("site", &["true".into()]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args, ["netns", "exec", "site", "true"]);
        let v = Vagrant { dir: "/v".into() };
        let c = v.command("mp", &["echo".into(), "a b".into()]);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[..4], ["ssh", "mp", "-c", "sudo echo 'a b'"]);
    }
}
