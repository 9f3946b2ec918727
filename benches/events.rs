//! Placeholder; the benchmarks follow.

fn main() {}
