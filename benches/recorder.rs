//! Cost of the flight recorder, side by side in one run: paired rounds of
//!
//! - `ring only`: a `debug` record that only the recorder keeps (the file
//!   filter is `info`);
//! - `file + ring`: an `info` record that goes to the file and the ring;
//! - `file only`: the same record at a target the recorder filter leaves
//!   out;
//! - `write(2)`: one raw `write(2)` of the same line to a file of its own
//!   (the syscall floor);
//!
//! a disabled callsite, then the medians of the per-round ratios against the goals, plus the
//! file record against its floor with the recorder on here and off in a
//! child process run right after (one lastwords per process) (ring only ≤ 0.35× the floor; the
//! recorder adds ≤ 10% to file records), and the resident memory before
//! and after 10 million ring-only records.
//!
//! ```text
//! cargo bench --bench recorder
//! ```

use std::hint::black_box;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// Rounds of the four measurements, interleaved.
const ROUNDS: usize = 41;
/// Records per measurement per round.
const BATCH: u64 = 5_000;

fn ring_only(i: u64) {
    tracing::debug!(target: "with_ring", n = i, s = "short", f = 0.25_f64, "request handled");
}

fn file_and_ring(i: u64) {
    tracing::info!(target: "with_ring", n = i, s = "short", f = 0.25_f64, "request handled");
}

fn file_only(i: u64) {
    tracing::info!(target: "sans_ring", n = i, s = "short", f = 0.25_f64, "request handled");
}

fn disabled(i: u64) {
    tracing::trace!(target: "with_ring", n = i, s = "short", f = 0.25_f64, "request handled");
}

fn per_record(batch: u64, f: impl Fn(u64)) -> f64 {
    let start = Instant::now();
    for i in 0..batch {
        f(black_box(i));
    }
    start.elapsed().as_nanos() as f64 / batch as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split(' ')
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Set in the child run that measures file records with the recorder off.
const OFF: &str = "LASTWORDS_BENCH_RECORDER_OFF";

/// Median over paired rounds of (file record / `write(2)` of its line).
fn file_over_floor(record: fn(u64), path: &std::path::Path) -> f64 {
    record(1_000_000);
    let text = std::fs::read_to_string(path).expect("read the log");
    let line = format!("{}\n", text.lines().last().expect("a record"));
    let floor_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path.with_extension("floor"))
        .expect("open the floor's file");
    let fd = floor_file.as_raw_fd();
    let write_line = |_: u64| {
        // SAFETY: a valid descriptor and buffer.
        let n = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
        assert_eq!(n, line.len() as isize);
    };
    per_record(BATCH, record);
    let ratios = (0..ROUNDS)
        .map(|_| per_record(BATCH, record) / per_record(BATCH, write_line))
        .collect();
    median(ratios)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to configure.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-tmp/recorder");
    if std::env::var_os(OFF).is_some() {
        // The child: file records with the recorder off, against its floor.
        let path = dir.join("off.jsonl");
        lastwords::init()
            .path(&path)
            .filter("info")
            .flight_recorder(0)
            .mirror(false)
            .install()
            .expect("install lastwords");
        println!("{}", file_over_floor(file_and_ring, &path));
        return;
    }
    // A leftover from an earlier run: start empty so files stay small.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the benchmark directory");
    let installed = lastwords::init()
        .path(dir.join("lastwords.jsonl"))
        .filter("info")
        .recorder_filter("debug,sans_ring=off")
        .mirror(false)
        .install()
        .expect("install lastwords");
    assert!(
        installed.flight_recorder_path().is_some(),
        "the recorder runs"
    );

    // The floor's line: exactly what lastwords wrote for the same event.
    file_and_ring(1_000_000);
    let text = std::fs::read_to_string(installed.path()).expect("read the log");
    let line = format!("{}\n", text.lines().last().expect("a record"));
    let floor_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("floor.jsonl"))
        .expect("open the floor's file");
    let fd = floor_file.as_raw_fd();
    let write_line = |_: u64| {
        // SAFETY: a valid descriptor and buffer.
        let n = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
        assert_eq!(n, line.len() as isize);
    };

    let names = ["ring only", "file + ring", "file only", "write(2)"];
    let mut results: [Vec<f64>; 4] = Default::default();
    // Warm-up round, not counted.
    per_record(BATCH, ring_only);
    per_record(BATCH, file_and_ring);
    per_record(BATCH, file_only);
    per_record(BATCH, write_line);
    // Ratios are taken per round (the two sides measured back to back, in
    // alternating order) and their median reported: the machine's load
    // drifts between rounds far more than within one.
    let mut ring_ratio = Vec::new();
    let mut file_ratio = Vec::new();
    for round in 0..ROUNDS {
        let (with, without) = if round % 2 == 0 {
            let with = per_record(BATCH, file_and_ring);
            (with, per_record(BATCH, file_only))
        } else {
            let without = per_record(BATCH, file_only);
            (per_record(BATCH, file_and_ring), without)
        };
        let ring = per_record(BATCH, ring_only);
        let floor = per_record(BATCH, write_line);
        ring_ratio.push(ring / floor);
        file_ratio.push(with / without);
        results[0].push(ring);
        results[1].push(with);
        results[2].push(without);
        results[3].push(floor);
    }
    let m: Vec<f64> = results.into_iter().map(median).collect();
    let mut out = std::io::stdout().lock();
    // Ignored below: a closed stdout only loses the report.
    let _ = writeln!(
        out,
        "\n## Flight recorder ({ROUNDS} paired rounds of {BATCH}, medians)\n"
    );
    let _ = writeln!(out, "| path | ns/record |\n|---|---:|");
    for (name, ns) in names.iter().zip(&m) {
        let _ = writeln!(out, "| {name} | {ns:.0} |");
    }
    let _ = writeln!(
        out,
        "\nmedian of per-round ratios:\nring only / write(2) = {:.2} (goal <= 0.35)\nfile + ring / file only = {:.3} (goal <= 1.10)",
        median(ring_ratio),
        median(file_ratio)
    );

    // The same file record with the recorder off, in a child process (one
    // lastwords per process), each against its own write(2) floor.
    let on = file_over_floor(file_and_ring, installed.path().as_path());
    let child = std::process::Command::new(std::env::current_exe().expect("current_exe"))
        .env(OFF, "1")
        .output()
        .expect("run the recorder-off child");
    let off: f64 = String::from_utf8_lossy(&child.stdout)
        .trim()
        .parse()
        .expect("the child prints its ratio");
    let _ = writeln!(
        out,
        "file record / write(2): recorder on {on:.3}, off {off:.3}; on/off = {:.3} (goal <= 1.10)",
        on / off
    );

    // A callsite neither filter enables: the recorder must not make it
    // dearer (DESIGN.md's anchor: 0.62 ns).
    let disabled_ns = median(
        (0..ROUNDS)
            .map(|_| per_record(BATCH * 100, disabled))
            .collect(),
    );
    let _ = writeln!(out, "disabled callsite (trace): {disabled_ns:.2} ns");

    let before = rss_bytes();
    for i in 0..10_000_000 {
        ring_only(i);
    }
    let after = rss_bytes();
    let _ = writeln!(
        out,
        "RSS before/after 10 million ring-only records: {} / {} KiB",
        before >> 10,
        after >> 10
    );
}
