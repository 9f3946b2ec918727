//! Resident memory of a process that logs through lastwords: `VmRSS` after
//! 100,000 records and after 10,000,000, which must stay within 1 MiB of
//! each other (nothing grows per record: buffers are per thread and reused,
//! the breadcrumb ring is fixed, callsites are static).
//!
//! ```text
//! cargo run --release --example memory            # 100,000 and 10,000,000
//! cargo run --release --example memory -- 1000000 # 100,000 and 1,000,000
//! ```
//!
//! The records mix what a service writes: events with fields, events inside
//! spans, `fn_exit` records of `#[exit_path]` functions (ok and err) and
//! breadcrumbs. The file is emptied every million records so that the run
//! needs no disk space; the page cache is not part of `VmRSS` anyway.
//! Exits with status 1 when the two figures differ by more than 1 MiB.

use std::process::ExitCode;

#[derive(Debug)]
struct Refused(u64);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "request {} refused", self.0)
    }
}

impl std::error::Error for Refused {}

#[lastwords::exit_path]
fn handle(id: u64) -> Result<u64, Refused> {
    if id % 1_000 == 2 {
        return Err(Refused(id));
    }
    Ok(id * 2)
}

/// Writes record number `i` (one record per call).
fn record(i: u64) {
    match i % 4 {
        0 => tracing::info!(n = i, s = "short", f = 0.25, "request handled"),
        1 => {
            let span = tracing::info_span!("connection", peer = "10.0.0.7:443", conn = i);
            let _entered = span.enter();
            tracing::warn!(retry = i % 5, reason = ?Some("timeout"), "slow peer");
        }
        2 => {
            // The record is what matters here, not the value.
            let _ = handle(i);
        }
        _ => lastwords::crumb!("checkpoint"),
    }
}

/// `VmRSS` of this process in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() -> ExitCode {
    const SMALL: u64 = 100_000;
    let large: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 10_000_000,
        Some(Ok(n)) if n > SMALL => n,
        Some(_) => {
            eprintln!("usage: memory [RECORDS > {SMALL}]");
            return ExitCode::from(2);
        }
    };
    let path = std::path::Path::new("target/memory-check/memory.jsonl");
    let _ = std::fs::remove_file(path); // a leftover from an earlier run
    lastwords::init()
        .path(path)
        .filter("trace")
        .mirror(false)
        .install()
        .expect("lastwords");

    let empty = || {
        // A file that cannot be emptied only grows; the figures stay valid.
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|f| f.set_len(0));
    };
    let mut small = 0;
    let start = std::time::Instant::now();
    for i in 1..=large {
        record(i);
        if i == SMALL {
            small = rss_kib();
        }
        if i % 1_000_000 == 0 {
            empty();
        }
    }
    let large_rss = rss_kib();
    let growth = large_rss as i64 - small as i64;
    println!("VmRSS after {SMALL} records: {small} KiB");
    println!("VmRSS after {large} records: {large_rss} KiB");
    println!(
        "growth: {growth} KiB ({:.0} ns per record, {} records dropped)",
        start.elapsed().as_nanos() as f64 / large as f64,
        lastwords::Lastwords::current().map_or(0, |l| l.dropped_records())
    );
    if growth.abs() > 1024 {
        println!("memory is not flat: more than 1 MiB of growth");
        return ExitCode::FAILURE;
    }
    println!("flat: within 1 MiB");
    ExitCode::SUCCESS
}
