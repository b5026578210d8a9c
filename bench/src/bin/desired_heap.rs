//! Retained heap and allocation count of one compiled `Desired`, and warm compile times:
//! the daemon keeps the last `Desired`, so its size is part of the idle RSS.
//!
//!   cargo run --release -p bench --bin desired_heap -- POLICY KEY [ROUNDS]

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use agent::load::{self, PolicyFiles};
use agent::model::{Algorithm, Desired};
use agent::plan::{desired, Compiler, Timestamp};
use sha2::{Digest, Sha256};

/// Counts live bytes and allocation calls on top of the system allocator.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        CALLS.fetch_add(1, Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Relaxed);
        CALLS.fetch_add(1, Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().collect();
    let config = PathBuf::from(&argv[1]);
    let rounds: usize = argv.get(3).map_or(Ok(20), |s| s.parse())?;
    let args = PolicyFiles {
        config: config.clone(),
        key: PathBuf::from(&argv[2]),
        ..PolicyFiles::default()
    };
    let now = Timestamp::from_secs(1_800_000_000);
    let local = BTreeSet::new();
    let ctx = load::load_text(&args, &std::fs::read_to_string(&config)?)?;
    drop(desired(&ctx.policy, &ctx.identity, &local, now)?); // fill the pair-key cache
    let (live0, calls0) = (LIVE.load(Relaxed), CALLS.load(Relaxed));
    let d = desired(&ctx.policy, &ctx.identity, &local, now)?;
    let (live1, calls1) = (LIVE.load(Relaxed), CALLS.load(Relaxed));
    println!(
        "desired: {} policies, {} SAs; retained {:.2} MB in {} allocation calls during compile",
        d.policies.len(),
        d.states.len(),
        (live1 - live0) as f64 / 1e6,
        calls1 - calls0
    );
    println!(
        "live heap with the policy, the identity's caches and this Desired: {:.2} MB",
        LIVE.load(Relaxed) as f64 / 1e6
    );
    println!("digest {}", digest(&d));
    // The incremental compile, after host h1 moved away and back, must give the same set.
    let mut compiler = Compiler::new();
    let mut moved = (*ctx.policy).clone();
    if let Some(h) = moved.hosts.iter_mut().find(|h| h.name == "h1") {
        h.addresses[0] = "192.0.2.1".parse()?;
    }
    let (policy, moved) = (Arc::clone(&ctx.policy), Arc::new(moved));
    for p in [&policy, &moved, &policy] {
        compiler.desired(p, &ctx.identity, &local, now)?;
    }
    let got = compiler.last().expect("compiled");
    println!("digest {} (incremental, {:?})", digest(got), compiler.how());
    let mut t: Vec<f64> = (0..rounds)
        .map(|_| {
            let start = Instant::now();
            let d = desired(&ctx.policy, &ctx.identity, &local, now).expect("compiles");
            let ms = start.elapsed().as_secs_f64() * 1e3;
            drop(d);
            ms
        })
        .collect();
    t.sort_by(f64::total_cmp);
    println!(
        "compile p50 {:.2} ms  min {:.2} ms  max {:.2} ms",
        t[t.len() / 2],
        t[0],
        t[t.len() - 1]
    );
    Ok(())
}

/// A hash of everything in the set, keys included (`Debug` redacts them): two compiles
/// with the same digest produced the same objects.
fn digest(d: &Desired) -> String {
    let mut h = Sha256::new();
    h.update(format!("{} {:?} {:?}", d.host, d.policies, d.next_change));
    for (k, s) in &d.states {
        h.update(format!("{k:?} {:?} {:?}", s.spec, s.meta));
        match &s.spec.alg {
            Algorithm::Aead { key, .. } => h.update(key.expose()),
            Algorithm::EncAuth {
                enc_key, auth_key, ..
            } => {
                h.update(enc_key.expose());
                h.update(auth_key.expose());
            }
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
