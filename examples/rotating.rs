//! Time-based rotation: `cargo run --example rotating [period] [ending]`.
//!
//! Installs lastwords with a new file every `period` (`minutely`, `hourly`
//! (default), `daily`, `weekly`), keeping the newest 7 files. The log goes to
//! `$LASTWORDS_PATH` (else `logs/rotating.jsonl`) with the period's date in
//! the name, as tracing-appender names its files:
//! `logs/rotating.2026-11-25-10.jsonl`. Then it logs a little, leaves
//! breadcrumbs and ends the way `ending` says: `ok` (default, return from
//! `main`) or `kill` (SIGKILL sent to itself, as the OOM killer would).
//!
//! Run it with `kill`, then again: the second run's `process_start` reports
//! the first one as `no_final_record` with its last breadcrumbs, read from
//! the newest file even when the period has changed in between.

use std::error::Error;

use lastwords::Rotation;

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let rotation = match args.next().as_deref() {
        None | Some("hourly") => Rotation::HOURLY,
        Some("minutely") => Rotation::MINUTELY,
        Some("daily") => Rotation::DAILY,
        Some("weekly") => Rotation::WEEKLY,
        Some(other) => return Err(format!("unknown period {other:?}").into()),
    };
    let ending = args.next().unwrap_or_else(|| "ok".into());
    let lastwords = lastwords::init()
        .rotation(rotation)
        .max_log_files(7)
        .install()?;

    tracing::info!(ending = %ending, "rotating example starting");
    lastwords::crumb!("loaded the batch", records = 3);
    for n in 1..=3 {
        tracing::info!(n, "record written");
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
