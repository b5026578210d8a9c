//! Benchmark and profiling tools for xfrm-agent (scripts/bench-*, docs/benchmarks.md):
//! binaries in `src/bin/`, shared helpers here.

pub mod edit;
