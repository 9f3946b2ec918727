//! The child process of `tests/in_flight.rs`: `#[exit_path]` calls that
//! block forever on a full channel, in threads and in tokio tasks.
//!
//! `block <threads> <tasks>`: installs lastwords (`LASTWORDS_PATH`,
//! `.stuck_after(LASTWORDS_STUCK_MS)`), makes 3 calls of `checked` that
//! leave through `?` and 2 through the tail, then starts the blocked calls
//! of `relocate` (threads) and `relocate_async` (tasks), prints
//! `blocked <unix ms>`, then `ready`, and waits to be killed. A line
//! `drain` on its stdin empties both channels, so that the blocked calls
//! return; it prints `drained` once none is in flight.
//! `start`: installs lastwords and exits, reporting on the previous run.

use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

#[lastwords::exit_path]
fn checked(fail: bool) -> Result<u32, String> {
    if fail {
        Err("bad".to_owned())?;
    }
    Ok(1)
}

/// Sends into a channel that is full and never drained: blocks forever.
#[lastwords::exit_path]
fn relocate(tx: &mpsc::SyncSender<u32>) -> Result<(), mpsc::SendError<u32>> {
    tx.send(2)?;
    Ok(())
}

/// The same in a tokio task.
#[lastwords::exit_path]
async fn relocate_async(tx: tokio::sync::mpsc::Sender<u32>) -> Result<(), String> {
    tx.send(2).await.map_err(|e| e.to_string())?;
    Ok(())
}

fn install() {
    let stuck = std::env::var("LASTWORDS_STUCK_MS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    lastwords::init()
        .stuck_after(std::time::Duration::from_millis(stuck))
        .install()
        .expect("lastwords");
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    install();
    if args.first().map(String::as_str) != Some("block") {
        return;
    }
    let threads: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    let tasks: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(4);
    for i in 0..5 {
        let _ = checked(i < 3);
    }
    let (tx, rx) = mpsc::sync_channel::<u32>(1);
    tx.send(0).expect("fill the channel");
    for _ in 0..threads {
        let tx = tx.clone();
        std::thread::spawn(move || relocate(&tx));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (atx, arx) = tokio::sync::mpsc::channel::<u32>(1);
    atx.try_send(0).expect("fill the channel");
    for _ in 0..tasks {
        runtime.spawn(relocate_async(atx.clone()));
    }
    // Wait until every blocked call is inside.
    while lastwords::in_flight().iter().map(|f| f.count).sum::<u64>() < (threads + tasks) as u64 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    println!("blocked {}", now.as_millis());
    println!("ready");
    let mut arx = arx;
    for line in std::io::stdin().lines() {
        if line.is_ok_and(|l| l == "drain") {
            drain(&rx, &mut arx);
        }
    }
    // Stdin closed: wait to be killed.
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let _keep = (&rx, &arx);
    }
}

/// Receives until no call is in flight: each receive lets one blocked
/// send through.
fn drain(rx: &mpsc::Receiver<u32>, arx: &mut tokio::sync::mpsc::Receiver<u32>) {
    while lastwords::in_flight().iter().map(|f| f.count).sum::<u64>() > 0 {
        while rx.try_recv().is_ok() {}
        while arx.try_recv().is_ok() {}
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    println!("drained");
}
