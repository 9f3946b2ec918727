//! Size rotation: `cargo run --example size_rotating [bytes] [records]
//! [period] [ending] [keep] [big]`.
//!
//! Installs lastwords with a new file whenever the next record would take
//! the current one past `bytes` (default 4096), optionally together with
//! time rotation (`period`: `never`, the default, `minutely`, `hourly`,
//! `daily`), keeping the newest `keep` files (`0`, the default, keeps them
//! all). The log goes to `$LASTWORDS_PATH` (else
//! `logs/size_rotating.jsonl`), numbered: `logs/size_rotating.0.jsonl`,
//! `logs/size_rotating.1.jsonl`, … (with a period:
//! `logs/size_rotating.2026-11-25.0.jsonl`, …).
//!
//! It writes `records` records (default 200) numbered by their `n` field,
//! one of them (the one numbered `big`, if not 0) larger than `bytes`,
//! leaves breadcrumbs, prints `the log is <path>`, and ends the way
//! `ending` says: `ok` (default, return from `main`) or `kill` (SIGKILL sent
//! to itself, as the OOM killer would). Run it with `kill`, then again: the
//! second run's `process_start` reports the first one as `no_final_record`,
//! read from the newest file (the highest number, as a number).

use std::error::Error;

use lastwords::Rotation;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let bytes: u64 = arg(0, "4096").parse()?;
    let records: u64 = arg(1, "200").parse()?;
    let rotation = match arg(2, "never").as_str() {
        "never" => Rotation::NEVER,
        "minutely" => Rotation::MINUTELY,
        "hourly" => Rotation::HOURLY,
        "daily" => Rotation::DAILY,
        other => return Err(format!("unknown period {other:?}").into()),
    };
    let ending = arg(3, "ok");
    let keep: usize = arg(4, "0").parse()?;
    let big: u64 = arg(5, "0").parse()?;

    let mut builder = lastwords::init().max_file_bytes(bytes).rotation(rotation);
    if keep > 0 {
        builder = builder.max_log_files(keep);
    }
    let lastwords = builder.install()?;

    tracing::info!(ending = %ending, "size rotation example starting");
    lastwords::crumb!("writing the batch", records);
    let large = "x".repeat(bytes as usize * 2);
    for n in 1..=records {
        if n == big {
            tracing::info!(n, payload = %large, "a record larger than a file");
        } else {
            tracing::info!(n, batch = "size-rotation", "record written");
        }
    }
    lastwords::crumb!("about to commit the batch");

    println!("the log is {}", lastwords.path().display());
    match ending.as_str() {
        "ok" => Ok(()),
        "kill" => {
            // SAFETY: kill(2) has no memory-safety preconditions.
            unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
            unreachable!("SIGKILL cannot be caught");
        }
        other => Err(format!("unknown ending {other:?}").into()),
    }
}
