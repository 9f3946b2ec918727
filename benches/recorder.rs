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
//! then the ratios against the goals (ring only ≤ 0.35× the floor; the
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
const ROUNDS: usize = 15;
/// Records per measurement per round.
const BATCH: u64 = 20_000;

fn ring_only(i: u64) {
    tracing::debug!(target: "with_ring", n = i, s = "short", f = 0.25_f64, "request handled");
}

fn file_and_ring(i: u64) {
    tracing::info!(target: "with_ring", n = i, s = "short", f = 0.25_f64, "request handled");
}

fn file_only(i: u64) {
    tracing::info!(target: "sans_ring", n = i, s = "short", f = 0.25_f64, "request handled");
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

fn main() {
    // `cargo bench` passes `--bench`; nothing to configure.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-tmp/recorder");
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
    for _ in 0..ROUNDS {
        results[0].push(per_record(BATCH, ring_only));
        results[1].push(per_record(BATCH, file_and_ring));
        results[2].push(per_record(BATCH, file_only));
        results[3].push(per_record(BATCH, write_line));
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
        "\nring only / write(2) = {:.2} (goal <= 0.35)\nfile + ring / file only = {:.3} (goal <= 1.10)",
        m[0] / m[3],
        m[1] / m[2]
    );

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
