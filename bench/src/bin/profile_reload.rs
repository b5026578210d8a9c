//! Where a daemon reload's time goes, stage by stage, in one process and without root:
//! read → sha256 → parse + validate → identity → compile (one-shot `desired`, which
//! computes every pair secret; the daemon's `Compiler` keeps them) → diff against the
//! previous compile. Used to find what to speed up; `scripts/bench-reload`
//! measures the real thing (rename → kernel).
//!
//! Then the incremental compile ([`agent::plan::Compiler`]) next to the full one, on the
//! benchmark's edit (change k moves host h{k}) and on a recompile with nothing changed,
//! each result checked against the full compile of the same inputs.
//!
//!   cargo run --release -p bench --bin profile_reload -- POLICY KEY [ROUNDS]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agent::load::{self, PolicyFiles};
use agent::model::{Observed, ObservedSa};
use agent::plan::{desired, diff::diff, Compiled, Compiler, Timestamp};
use bench::edit;
use sha2::{Digest, Sha256};

/// Counts live heap bytes, to report what a loaded policy and a compiled set retain.
struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: defers to the system allocator; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn mb(bytes: usize) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let (config, key) = (PathBuf::from(&argv[1]), PathBuf::from(&argv[2]));
    let rounds: usize = argv.get(3).map_or(Ok(10), |s| s.parse())?;
    let args = PolicyFiles {
        config: config.clone(),
        key,
        ..PolicyFiles::default()
    };
    let now = Timestamp::from_secs(1_800_000_000);
    let local = BTreeSet::new();
    let text = std::fs::read_to_string(&config)?;
    let base = LIVE.load(Ordering::Relaxed);
    let mut prev = load::load_text(&args, &text)?;
    let loaded = LIVE.load(Ordering::Relaxed);
    let mut prev_d = desired(&prev.policy, &prev.identity, &local, now)?;
    let compiled = LIVE.load(Ordering::Relaxed);
    println!(
        "retained heap: loaded policy + identity {:.1} MB, desired set {:.1} MB ({} policies, {} SAs)",
        mb(loaded - base),
        mb(compiled - loaded),
        prev_d.policies.len(),
        prev_d.states.len()
    );
    drop(text);
    let names = [
        "read",
        "sha256",
        "load",
        "compile",
        "observed*",
        "diff",
        "drop old",
    ];
    let mut t = vec![Vec::new(); names.len()];
    for _ in 0..rounds {
        let mut lap = Instant::now();
        let mut mark = |i: usize, t: &mut Vec<Vec<Duration>>| {
            t[i].push(lap.elapsed());
            lap = Instant::now();
        };
        let text = std::fs::read_to_string(&config)?;
        mark(0, &mut t);
        let _ = Sha256::digest(text.as_bytes());
        mark(1, &mut t);
        let ctx = load::load_text(&args, &text)?;
        mark(2, &mut t);
        let d = desired(&ctx.policy, &ctx.identity, &local, now)?;
        mark(3, &mut t);
        let observed = Observed {
            policies: prev_d
                .policies
                .iter()
                .map(|(k, v)| (*k, v.spec.clone()))
                .collect(),
            states: prev_d
                .states
                .iter()
                .map(|(k, v)| {
                    (
                        *k,
                        ObservedSa {
                            spec: v.spec.clone(),
                            stats: Default::default(),
                        },
                    )
                })
                .collect(),
            ..Observed::default()
        };
        mark(4, &mut t);
        let plan = diff(&d, &observed, &ctx.policy.ownership);
        mark(5, &mut t);
        assert!(plan.ops.is_empty());
        drop(std::mem::replace(&mut prev, ctx));
        drop(std::mem::replace(&mut prev_d, d));
        mark(6, &mut t);
    }
    for (name, v) in names.iter().zip(t) {
        print_times(name, v);
    }
    drop(prev_d);
    incremental(&args, prev, rounds, now)
}

fn print_times(name: &str, mut v: Vec<Duration>) {
    v.sort();
    println!(
        "{name:10} p50 {:8.2} ms  max {:8.2} ms",
        v[v.len() / 2].as_secs_f64() * 1e3,
        v[v.len() - 1].as_secs_f64() * 1e3
    );
}

/// Full compile vs `Compiler` on `rounds` one-host changes, and on recompiles with
/// nothing changed a moment later (same epochs): of the same policy value (what resyncs
/// and address events do) and of an equal one (a reload of the same file).
fn incremental(
    args: &PolicyFiles,
    prev: load::Context,
    rounds: usize,
    now: Timestamp,
) -> anyhow::Result<()> {
    let local = BTreeSet::new();
    let live = || LIVE.load(Ordering::Relaxed);
    let (mut policy, mut id) = (Arc::new(prev.policy), prev.identity);
    let base = live();
    let plain = desired(&policy, &id, &local, now)?;
    let plain_mb = mb(live() - base);
    drop(plain);
    let mut compiler = Compiler::new();
    let base = live();
    compiler.desired(&policy, &id, &local, now)?;
    // "full": a full compile as the daemon makes one (pair secrets kept).
    let mut full_c = Compiler::new();
    full_c.desired(&policy, &id, &local, now)?;
    full_c.full_next();
    println!(
        "retained heap: desired set {plain_mb:.2} MB; compiler (desired set + what a patch needs, the policy shared) {:.2} MB",
        mb(live() - base)
    );
    let mut text = std::fs::read_to_string(&args.config)?;
    let names = ["full", "drop full", "one host", "no change", "same file"];
    let mut t = vec![Vec::new(); names.len()];
    for k in 1..=rounds {
        text = edit::move_host(&text, k as u32)?;
        let ctx = load::load_text(args, &text)?;
        // Like the daemon, which holds the replaced policy until the kernel has the new
        // one: freeing it is not the compile's time.
        let retired = std::mem::replace(&mut policy, Arc::new(ctx.policy));
        id = ctx.identity;
        // The daemon's clock moves on between compiles (outbound sequence numbers follow).
        let at = Timestamp(now.nanos() + k as u64 * 100_000_000);
        let lap = Instant::now();
        compiler.desired(&policy, &id, &local, at)?;
        t[2].push(lap.elapsed());
        let how = compiler.how().cloned();
        assert!(matches!(how, Some(Compiled::Patched { .. })), "{how:?}");
        let lap = Instant::now();
        full_c.desired(&policy, &id, &local, at)?;
        t[0].push(lap.elapsed());
        assert!(compiler.last() == full_c.last(), "differs from full at {k}");
        let lap = Instant::now();
        full_c.full_next();
        t[1].push(lap.elapsed());
        // Then the same policy again, and an equal copy (a reload of the same file),
        // which the daemon then holds.
        for (i, p) in [(3, policy.clone()), (4, Arc::new((*policy).clone()))] {
            let later = Timestamp(at.nanos() + 10_000_000 * i);
            let lap = Instant::now();
            compiler.desired(&p, &id, &local, later)?;
            t[i as usize].push(lap.elapsed());
            let full = desired(&p, &id, &local, later)?;
            assert!(compiler.last() == Some(&full), "no change differs at {k}");
            policy = p;
        }
        drop(retired);
    }
    println!("compile of a one-host change and of no change, over {rounds} changes:");
    for (name, v) in names.iter().zip(t) {
        print_times(name, v);
    }
    Ok(())
}
