//! Full `load` against `Reloader::load` of a text that differs from the last one in one
//! `[[hosts]]` entry, in the same run: `cargo run --release -p policy-schema --example
//! reload [HOSTS...]` (default 1000 10000), or `-- --file policy.toml` for a real file whose
//! last host's address is toggled.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use base64::Engine;
use policy_schema::{load, Reloader};

const RUNS: usize = 41;

/// The system allocator, counting live bytes and their peak: what a load allocates at
/// most is what glibc's arenas may keep after it.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let live = LIVE.fetch_add(l.size(), Relaxed) + l.size();
        PEAK.fetch_max(live, Relaxed);
        unsafe { System.alloc(l) }
    }

    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes `f` had allocated at most beyond what was live before it.
fn peak_of<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed) - base)
}

/// A file shaped like the 10k-host profile: one exemption, a hub rule to every host.
fn generate(hosts: usize) -> String {
    let mut s =
        String::from("version = 1\n\n[[exemptions]]\nname = \"icmp\"\nprotocol = \"icmp\"\n\n");
    s.push_str("[[rules]]\nname = \"hub\"\nfrom = [\"host:h0\"]\nto = [");
    let to: Vec<String> = (1..hosts).map(|i| format!("\"host:h{i}\"")).collect();
    s.push_str(&to.join(", "));
    s.push_str("]\naction = \"require\"\n");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..hosts {
        let mut key = [0u8; 32];
        for b in &mut key {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            *b = (x >> 56) as u8;
        }
        let key = base64::engine::general_purpose::STANDARD.encode(key);
        let addr = format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256);
        s.push_str(&format!(
            "\n[[hosts]]\nname = \"h{i}\"\naddresses = [\"{addr}\"]\npublic-key = \"{key}\"\n"
        ));
    }
    s
}

/// The text with the address of the last `addresses = ["…"]` line changed.
fn edited(text: &str) -> String {
    let at = text.rfind("addresses = [\"").expect("a host") + "addresses = [\"".len();
    let end = at + text[at..].find('"').expect("closing quote");
    format!("{}192.0.2.77{}", &text[..at], &text[end..])
}

/// Wall time of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "min {:6.2} ms  p50 {:6.2} ms  max {:6.2} ms",
        ms(d[0]),
        ms(d[d.len() / 2]),
        ms(d[d.len() - 1])
    )
}

fn bench(label: &str, a: &str) {
    let b = edited(a);
    let (mut full, mut inc) = (vec![], vec![]);
    let mut r = Reloader::new();
    let mut prev = r.load("f", a, None).expect("loads").policy;
    for i in 0..RUNS {
        let text = if i % 2 == 0 { &b } else { a };
        let (want, wall) = timed(|| load("f", text).expect("loads"));
        full.push(wall);
        let (got, wall) = timed(|| r.load("f", text, Some(&prev)).expect("loads"));
        inc.push(wall);
        assert_eq!(got.policy, want.policy);
        assert_eq!(got.warnings, want.warnings);
        prev = got.policy;
    }
    println!("{label}: {} bytes, {} hosts", a.len(), prev.hosts.len());
    println!("  full load          {}", stats(full));
    println!("  reload, one host   {}", stats(inc));
    println!("  reloader keeps     {} KB", r.retained_bytes() / 1024);
    let text = if RUNS.is_multiple_of(2) { &b } else { a };
    let (_, full_peak) = peak_of(|| load("f", text).expect("loads"));
    let (_, inc_peak) = peak_of(|| r.load("f", text, Some(&prev)).expect("loads"));
    println!(
        "  peak heap of a load, result included: full {} KB, reload {} KB",
        full_peak / 1024,
        inc_peak / 1024
    );
}

fn main() {
    // RELOAD_LOOP=N: only N one-host reloads at 10k hosts, for a profiler (with
    // RELOAD_FULL=1, N full loads instead).
    if let Ok(n) = std::env::var("RELOAD_LOOP") {
        let full = std::env::var_os("RELOAD_FULL").is_some();
        let a = generate(10_000);
        let b = edited(&a);
        let mut r = Reloader::new();
        let mut prev = r.load("f", &a, None).expect("loads").policy;
        for i in 0..n.parse::<usize>().unwrap() {
            let text = if i % 2 == 0 { &b } else { &a };
            prev = match full {
                true => load("f", text).expect("loads").policy,
                false => r.load("f", text, Some(&prev)).expect("loads").policy,
            };
        }
        return;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--file") {
        let path = args.get(1).expect("--file PATH");
        let text = std::fs::read_to_string(path).expect("readable");
        return bench(path, &text);
    }
    let sizes: Vec<usize> = match args.is_empty() {
        true => vec![1000, 10_000],
        false => args
            .iter()
            .map(|a| a.parse().expect("a host count"))
            .collect(),
    };
    for n in sizes {
        bench(&format!("{n} hosts"), &generate(n));
    }
}
