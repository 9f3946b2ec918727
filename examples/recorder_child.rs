//! The child process of `tests/recorder.rs`: logs debug records that only
//! the flight recorder keeps (the file gets `info`), then waits to be
//! killed, or allocates until the kernel kills it.
//!
//! Usage: `recorder_child <scenario>` with `LASTWORDS_PATH` set, where
//! scenario is
//! - `debug`: `RECORDER_RECORDS` records numbered `i` (every 100th at
//!   `info`, the rest at `debug`), then `ready` on stdout, then idle;
//! - `storm`: 8 threads log debug records `t`, `i` without pause; `ready`
//!   once each thread has logged 1,000;
//! - `oom`: debug records while allocating 1 MiB blocks, each touched,
//!   until the OOM killer ends it;
//! - `panic`: 50 debug records, then a panic on the main thread;
//! - `start`: installs lastwords and returns from `main`;
//! - `off`: the same with `.flight_recorder(0)`, printing its thread count;
//! - `bad-filter`: a recorder filter that does not parse: prints the
//!   error and exits with 2.

use std::io::Write;
use std::time::Duration;

fn main() {
    let scenario = std::env::args().nth(1).unwrap_or_default();
    let builder = lastwords::init().filter("info");
    let builder = match scenario.as_str() {
        "off" => builder.flight_recorder(0),
        "bad-filter" => builder.recorder_filter("debug,=[{"),
        _ => builder.recorder_filter("debug"),
    };
    if let Err(e) = builder.install() {
        println!("{e}");
        std::process::exit(2);
    }
    match scenario.as_str() {
        "debug" => {
            let n: u64 = std::env::var("RECORDER_RECORDS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(20_000);
            for i in 0..n {
                if i % 100 == 0 {
                    tracing::info!(i, "to the file and the ring");
                } else {
                    tracing::debug!(i, detail = "only in the ring", "debug record");
                }
            }
            ready();
            idle();
        }
        "storm" => {
            let started = std::sync::Arc::new(std::sync::Barrier::new(9));
            for t in 0..8u64 {
                let started = started.clone();
                std::thread::spawn(move || {
                    for i in 0u64.. {
                        tracing::debug!(t, i, pad = "storm storm storm storm", "storm");
                        if i == 1_000 {
                            started.wait();
                        }
                    }
                });
            }
            started.wait();
            ready();
            idle();
        }
        "oom" => {
            let mut blocks: Vec<Vec<u8>> = Vec::new();
            for i in 0u64.. {
                let mut block = vec![0u8; 1 << 20];
                // Touch every page so that it is resident and charged.
                for page in block.iter_mut().step_by(4096) {
                    *page = 1;
                }
                blocks.push(block);
                tracing::debug!(i, held_mib = blocks.len(), "allocated");
                if i == 0 {
                    ready();
                }
            }
        }
        "panic" => {
            for i in 0..50u64 {
                tracing::debug!(i, "before the panic");
            }
            panic!("the child panics");
        }
        "start" => {}
        "off" => {
            tracing::debug!("not kept anywhere with the recorder off");
            // No heartbeat: the main thread is the only one.
            let threads = std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count());
            println!("threads {threads}");
        }
        other => panic!("unknown scenario {other:?}"),
    }
}

fn ready() {
    let mut out = std::io::stdout();
    // Ignored: a parent that stopped reading only loses the signal to go on.
    let _ = out.write_all(b"ready\n").and_then(|()| out.flush());
}

fn idle() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}
