//! What the exit counts and the calls-in-flight accounting cost per
//! `#[exit_path]` call, side by side in one run: a plain function and the
//! same annotated one, first with the flight recorder off (nothing counts;
//! no subscriber, so the records are disabled too), then after
//! `lastwords::init().filter("off").recorder_filter("off").install()` with the recorder on (every
//! exit counted and every call counted in flight, the records still
//! filtered out). Each figure is the median of 31 alternating rounds of
//! 2 million calls; what matters is the annotated-minus-plain difference of
//! each phase.
//!
//! ```text
//! cargo bench --bench exit_counts
//! ```

use std::hint::black_box;
use std::time::Instant;

#[inline(never)]
fn plain(x: u64) -> Result<u64, ()> {
    if x == u64::MAX {
        return Err(());
    }
    Ok(x.wrapping_mul(3))
}

#[lastwords::exit_path]
#[inline(never)]
fn annotated(x: u64) -> Result<u64, ()> {
    if x == u64::MAX {
        return Err(());
    }
    Ok(x.wrapping_mul(3))
}

const CALLS: u64 = 2_000_000;
const ROUNDS: usize = 31;

fn round(f: fn(u64) -> Result<u64, ()>) -> f64 {
    let start = Instant::now();
    for i in 0..CALLS {
        let _ = black_box(f(black_box(i)));
    }
    start.elapsed().as_nanos() as f64 / CALLS as f64
}

/// Median ns per call of `plain` and `annotated`, alternating rounds.
fn phase() -> (f64, f64) {
    let (mut p, mut a) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        p.push(round(plain));
        a.push(round(annotated));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|x, y| x.partial_cmp(y).unwrap());
        v[v.len() / 2]
    };
    (median(&mut p), median(&mut a))
}

fn main() {
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let (p0, a0) = phase();
    if std::env::var_os("EXIT_COUNTS_OFF_ONLY").is_some() {
        println!("plain {p0:.2} ns, annotated {a0:.2} ns");
        return;
    }
    let dir = std::env::temp_dir().join(format!("lastwords-bench-counts-{}", std::process::id()));
    lastwords::init()
        .path(dir.join("bench.jsonl"))
        .filter("off")
        .recorder_filter("off")
        .install()
        .expect("lastwords");
    let (p1, a1) = phase();
    let counted: u64 = lastwords::exit_counts().iter().map(|c| c.n).sum();
    assert!(
        counted >= CALLS * ROUNDS as u64,
        "exits not counted: {counted}"
    );
    println!("per call, median of {ROUNDS} rounds of {CALLS} calls");
    println!("  plain fn                        {p0:6.2} ns   {p1:6.2} ns (recorder on)");
    println!(
        "  #[exit_path], counts off        {a0:6.2} ns   (+{:.2} ns)",
        a0 - p0
    );
    println!(
        "  #[exit_path], counts + in flight {a1:6.2} ns  (+{:.2} ns over plain, +{:.2} ns over counts off)",
        a1 - p1,
        (a1 - p1) - (a0 - p0)
    );
    let _ = std::fs::remove_dir_all(&dir); // a temporary directory
}
