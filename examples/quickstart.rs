//! The quick start: `cargo run --example quickstart [how]`.
//!
//! Installs lastwords (the log goes to `$LASTWORDS_PATH`, else
//! `logs/quickstart.jsonl`), logs a little, leaves breadcrumbs, then dies
//! the way `how` says:
//!
//! | `how` | ending | exit status |
//! |---|---|---|
//! | `thread-panic` (default) | a panic in a spawned thread, then `lastwords::exit(3)` | 3 |
//! | `panic` | a panic in `main` | 101 |
//! | `error` | `main` returns `Err` | 1 |
//! | `sigterm` | SIGTERM (sent to itself) | killed by SIGTERM |
//! | `segv` | a write through a null pointer | killed by SIGSEGV |
//! | `abort` | `std::process::abort()` | killed by SIGABRT |
//! | `overflow` | unbounded recursion | std's "has overflowed its stack", SIGABRT |
//! | `ok` | a clean return from `main` | 0 |
//!
//! Run it twice: the second run's `process_start` record reports how the
//! first one ended (`previous_run`).

use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let how = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "thread-panic".into());
    let lastwords = lastwords::init().install()?;

    tracing::info!(how = %how, "quickstart starting");
    lastwords::crumb!("loading configuration");
    let workers = 2;
    tracing::info!(workers, "configuration loaded");
    lastwords::crumb!("spawning workers", workers = workers);

    // Printed before dying: a process killed by a signal prints nothing after.
    let path = lastwords.path().display().to_string();
    println!("the log is {path}; read how this run ended with:");
    println!(
        "  jq -c 'select(.kind != \"event\") | {{seq, kind, message, location, exit_code, signal}}' {path}"
    );

    match how.as_str() {
        "thread-panic" => {
            let worker = std::thread::Builder::new()
                .name("worker-1".into())
                .spawn(|| {
                    lastwords::crumb!("worker parsing a record");
                    let fields: Vec<&str> = "2026-11-25,ingest".split(',').collect();
                    println!("host = {}", fields[2]); // index out of bounds
                })?;
            // A panicking thread leaves the exit status alone: only the
            // `panic` record says it happened.
            if worker.join().is_err() {
                tracing::error!("worker-1 died; shutting down");
            }
            lastwords::crumb!("giving up");
            lastwords::exit(3);
        }
        "panic" => panic!("configuration is missing `listen`"),
        "error" => Err("cannot bind 0.0.0.0:8080: address in use".into()),
        "sigterm" => {
            // SAFETY: raise has no preconditions.
            unsafe { libc::raise(libc::SIGTERM) };
            Ok(())
        }
        "segv" => {
            // SAFETY: none: this writes through a null pointer on purpose.
            unsafe { std::ptr::write_volatile(std::ptr::null_mut::<u8>(), 1) };
            Ok(())
        }
        "abort" => std::process::abort(),
        "overflow" => {
            fn dive(depth: u64) -> u64 {
                if depth == u64::MAX {
                    return depth;
                }
                let frame = std::hint::black_box([depth; 512]);
                dive(depth + 1) + frame[0]
            }
            println!("{}", dive(0));
            Ok(())
        }
        "ok" => {
            tracing::info!("all done");
            Ok(())
        }
        other => Err(format!(
            "unknown ending {other:?}: try thread-panic, panic, error, sigterm, segv, abort, overflow or ok"
        )
        .into()),
    }
}
