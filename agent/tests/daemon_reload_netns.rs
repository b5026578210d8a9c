//! The daemon's reload path on this machine's kernel, in throw-away namespaces: a reload
//! the compiler patches reads only the keys it changed (batched GETs, no dump) and leaves
//! the kernel exactly where a one-shot `apply` of the new file leaves a fresh namespace;
//! a change it cannot patch, or one after a failed write, reads the whole kernel. Policies
//! only (SAs are the lab's). Needs root; skips with a reason otherwise.

mod support;

use std::process::{Command, Stdio};

use support::daemon::*;

/// A public key for a made-up host (`xfrm-agent keygen | xfrm-agent pubkey`).
fn new_pubkey() -> String {
    let key = Command::new(AGENT).arg("keygen").output().unwrap().stdout;
    let mut p = Command::new(AGENT)
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    p.stdin.take().unwrap().write_all(&key).unwrap();
    let out = p.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// site, and peers p1..pN outside every zone, all named in one hub rule: a peer's move
/// changes only its own selectors. The last peer is at `last`.
fn hub(keys: &[String], last: &str) -> String {
    let site = std::fs::read_to_string(repo("examples/dual-stack.toml")).unwrap();
    let site_key = site
        .lines()
        .skip_while(|l| !l.contains("name = \"site\""))
        .find_map(|l| l.strip_prefix("public-key = "))
        .unwrap()
        .to_string();
    let mut t = format!(
        "version = 1\n\n[[hosts]]\nname = \"site\"\naddresses = [\"10.10.0.10\"]\npublic-key = {site_key}\n"
    );
    let mut to = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let a = match i + 1 == keys.len() {
            true => last.to_string(),
            false => format!("192.168.70.{}", i + 1),
        };
        t +=
            &format!("\n[[hosts]]\nname = \"p{i}\"\naddresses = [\"{a}\"]\npublic-key = \"{k}\"\n");
        to.push(format!("\"host:p{i}\""));
    }
    t += &format!(
        "\n[[rules]]\nname = \"hub\"\nfrom = [\"host:site\"]\nto = [{}]\naction = \"require\"\n",
        to.join(", ")
    );
    t
}

#[test]
fn a_patched_reload_reads_only_its_keys_and_ends_where_apply_does() {
    let Some((ns, f)) = rig(
        "a_patched_reload_reads_only_its_keys_and_ends_where_apply_does",
        "rdk",
    ) else {
        return;
    };
    let keys: Vec<String> = (0..12).map(|_| new_pubkey()).collect();
    f.replace(&hub(&keys, "192.168.70.99"));
    let _d = Daemon::start(&ns, &f, &[]);
    assert_eq!(view(&ns).unwrap()["last_reconcile"]["read"], "dump");
    assert!(policies(&ns).iter().any(|l| l.contains("192.168.70.99/32")));

    // The last peer moves: its selectors go, new ones come; the rest stays.
    let moved = hub(&keys, "192.168.70.33");
    f.replace(&moved);
    wait_for("the move to reach the kernel", || {
        let p = policies(&ns);
        p.iter().any(|l| l.contains("192.168.70.33/32"))
            && !p.iter().any(|l| l.contains("192.168.70.99/32"))
    });
    let v = view(&ns).unwrap();
    let c = &v["last_reconcile"];
    assert_eq!(c["cause"], "reload", "{v}");
    let read = c["read"].as_str().unwrap();
    assert!(read.ends_with(" keys"), "a patched reload reads keys: {v}");
    let n: usize = read.split(' ').next().unwrap().parse().unwrap();
    assert!(n > 0 && n < policies(&ns).len(), "{n} keys read: {v}");
    assert!(c["verified"].as_bool().unwrap(), "{v}");

    // The kernel holds what a one-shot apply of the new file gives a fresh namespace.
    let want = applied_fresh(&f);
    assert!(want.len() > 20, "apply installed the policies");
    assert_eq!(policies(&ns), want);

    assert_eq!(v["owned_policies"].as_u64().unwrap() as usize, want.len());

    // Someone deletes another peer's policy and the file changes (a comment) at once: the
    // keys-only reload does not hide the deletion; it is restored.
    let victim = "xfrm policy delete dir out src 10.10.0.10/32 dst 192.168.70.1/32";
    ns.ip(&victim.split(' ').collect::<Vec<_>>());
    f.replace(&format!("{moved}# edited\n"));
    wait_for("the deleted policy to be restored", || {
        policies(&ns) == want
    });
}
