//! What a caught panic costs with lastwords installed, next to the same
//! panic without it, in one run (DESIGN.md: at most 20 µs more).
//!
//! A caught panic (`catch_unwind`, a web framework's panic guard, a tokio
//! task) runs std's panic hook and unwinds; with lastwords it also writes
//! a `panic` record and its stderr line. Both sides run std's default hook
//! with stderr on `/dev/null` (so a terminal's speed does not count), the
//! default configuration (stderr mirror on, `RUST_BACKTRACE` unset), and
//! the same panics: first without lastwords, then after `install()`.
//!
//! Also measured: entering and leaving a span, which lastwords follows to
//! keep the panic hook's spans ready, in the stack `install()` builds
//! (registry, `EnvFilter`, lastwords) against a registry alone.
//!
//! `cargo bench --bench panics` prints one table; no criterion (the panic
//! hook is process-wide: the two sides cannot be interleaved).

use std::hint::black_box;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Panics per batch, and batches per side (the median batch is reported).
const PANICS: u32 = 5_000;
const BATCHES: usize = 7;

/// Microseconds per call of `f`, the median over [`BATCHES`] of `n` calls.
fn per_call(n: u32, mut f: impl FnMut(u32)) -> f64 {
    let mut batches: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let started = Instant::now();
            for i in 0..n {
                f(i);
            }
            started.elapsed().as_secs_f64() * 1e6 / f64::from(n)
        })
        .collect();
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}

fn caught_panic(i: u32) {
    let caught = std::panic::catch_unwind(|| {
        if black_box(i) < u32::MAX {
            panic!("request {i} failed");
        }
    });
    assert!(caught.is_err());
}

fn caught_panic_in_spans(i: u32) {
    let _conn = tracing::info_span!("conn", peer = "10.0.0.7").entered();
    let _request = tracing::info_span!("request", id = i).entered();
    caught_panic(i);
}

fn enter_exit(span: &tracing::Span) {
    let _entered = black_box(span).enter();
}

/// Points stderr at `/dev/null` while `f` runs.
fn quiet<R>(f: impl FnOnce() -> R) -> R {
    let null = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/null")
        .expect("open /dev/null");
    // SAFETY: dup/dup2 on descriptors this function owns or on stderr.
    let saved = unsafe { libc::dup(2) };
    assert!(saved >= 0, "dup stderr");
    // SAFETY: as above.
    unsafe { libc::dup2(null.as_raw_fd(), 2) };
    let r = f();
    // SAFETY: as above.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    r
}

fn main() {
    // The default configuration: std prints no backtrace, and lastwords
    // records none (set before any thread or panic exists).
    std::env::remove_var("RUST_BACKTRACE");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-tmp/panics");
    // A leftover from an earlier run.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the benchmark directory");

    // Warm up std's hook and the unwinder.
    quiet(|| (0..1_000).for_each(caught_panic));
    let spans_without = {
        let registry = tracing_subscriber::registry();
        tracing::subscriber::with_default(registry, || {
            let span = tracing::info_span!("request", id = 42_u64, path = "/ingest");
            per_call(200_000, |_| enter_exit(&span))
        })
    };
    let without = quiet(|| per_call(PANICS, caught_panic));

    lastwords::init()
        .path(dir.join("panics.jsonl"))
        .install()
        .expect("lastwords installs");
    quiet(|| (0..1_000).for_each(caught_panic));
    let with = quiet(|| per_call(PANICS, caught_panic));
    let with_spans = quiet(|| per_call(PANICS, caught_panic_in_spans));
    let span = tracing::info_span!("request", id = 42_u64, path = "/ingest");
    let spans_with = per_call(200_000, |_| enter_exit(&span));
    // Once, as a first panic with `RUST_BACKTRACE=1` would: not in the
    // table's ratio, only to show what the policy avoids.
    let started = Instant::now();
    let backtrace = std::backtrace::Backtrace::force_capture().to_string();
    let resolve = started.elapsed();
    black_box(backtrace);

    println!();
    println!("caught panic, median of {BATCHES} batches of {PANICS}:");
    println!("  without lastwords            {without:8.2} us");
    println!(
        "  with lastwords               {with:8.2} us   (+{:.2} us)",
        with - without
    );
    println!(
        "  with lastwords, in 2 spans   {with_spans:8.2} us   (+{:.2} us; the spans' own cost included)",
        with_spans - without
    );
    println!("span enter + exit:");
    println!(
        "  registry alone               {:8.1} ns",
        spans_without * 1e3
    );
    println!(
        "  install() stack              {:8.1} ns   (+{:.1} ns; EnvFilter and dispatch included)",
        spans_with * 1e3,
        (spans_with - spans_without) * 1e3
    );
    println!(
        "the first resolved backtrace (debug info loaded; every panic resolved one before): {:.2} ms",
        resolve.as_secs_f64() * 1e3
    );
    let limit = Duration::from_micros(20).as_secs_f64() * 1e6;
    println!(
        "goal: at most {limit:.0} us more per caught panic: {}",
        if with - without <= limit {
            "met"
        } else {
            "NOT met"
        }
    );
}
