//! A stream tracker that "lost streams silently": a rebalancer relocates
//! streams to worker nodes through a bounded channel. `relocate` has several
//! early returns (record missing, no target node, queue full); with
//! `#[exit_path]` the log says which one was taken for each stream and how
//! often, and breadcrumbs show where a send blocked.
//!
//! ```sh
//! cargo run --example stream_tracker
//! # which early return, how often:
//! jq -s -c '[.[] | select(.kind == "fn_exit" and .label == "relocate")]
//!           | group_by(.line) | map({line: .[0].line, site: .[0].site, error: .[0].error, n: length})' \
//!    logs/stream_tracker.jsonl
//! # every call, including the successful ones (logged at DEBUG):
//! RUST_LOG=debug cargo run --example stream_tracker
//! # the workers stall: a relocation blocks on the full queue forever, the
//! # heartbeat writes a `stuck` record after 2 s, and the process exits
//! # with its calls in flight in the `process_exit` record:
//! cargo run --example stream_tracker -- --stall
//! jq -c 'select(.kind == "stuck" or .kind == "process_exit") | {kind, message, in_flight}' \
//!    logs/stream_tracker.jsonl
//! ```
//!
//! Without a record per call, the flight recorder counts every exit of
//! every `#[exit_path]` function: the example prints
//! `lastwords::exit_counts()` at the end (what a health endpoint would
//! serve), and the next start's `previous_run.exit_counts` has the same
//! counts, even after a SIGKILL.
//!
//! The log goes to `$LASTWORDS_PATH`, else `logs/stream_tracker.jsonl`.

use std::collections::HashMap;
use std::fmt;
use std::process::ExitCode;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// How many streams the rebalancer relocates.
const STREAMS: u64 = 120;
/// Capacity of the relocation queue: small, so that it fills up.
const QUEUE: usize = 4;
/// Worker nodes, each taking this many streams at most.
const NODES: u64 = 3;
const NODE_CAPACITY: u64 = 30;

type StreamId = u64;
type NodeId = u64;

/// What the tracker knows about a stream.
struct StreamRecord {
    node: NodeId,
}

/// One relocation order for a worker.
struct Relocation {
    stream: StreamId,
    to: NodeId,
}

/// Why a stream could not be relocated.
#[derive(Debug)]
enum RelocateError {
    RecordMissing(StreamId),
    NoTargetNode(StreamId),
    QueueFull { stream: StreamId, to: NodeId },
}

impl fmt::Display for RelocateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RelocateError::RecordMissing(id) => write!(f, "stream {id}: record missing"),
            RelocateError::NoTargetNode(id) => write!(f, "stream {id}: no target node"),
            RelocateError::QueueFull { stream, to } => {
                write!(f, "stream {stream}: relocation queue to node {to} full")
            }
        }
    }
}

impl std::error::Error for RelocateError {}

struct Tracker {
    records: HashMap<StreamId, StreamRecord>,
    /// Streams assigned per node, as the tracker believes.
    load: Mutex<HashMap<NodeId, u64>>,
    queue: SyncSender<Relocation>,
}

impl Tracker {
    /// The least loaded node other than `from` that still has room.
    fn pick_target(&self, from: NodeId) -> Option<NodeId> {
        let mut load = self.load.lock().unwrap_or_else(|e| e.into_inner());
        let (node, n) = (0..NODES)
            .filter(|&n| n != from)
            .map(|n| (n, *load.get(&n).unwrap_or(&0)))
            .filter(|&(_, n)| n < NODE_CAPACITY)
            .min_by_key(|&(_, n)| n)?;
        load.insert(node, n + 1);
        Some(node)
    }

    /// Moves one stream to another node. Successful calls are logged at
    /// DEBUG, early returns at WARN, each with its own line.
    #[lastwords::exit_path(level = "debug", err_level = "warn", label = "relocate")]
    fn relocate(&self, id: StreamId) -> Result<NodeId, RelocateError> {
        let Some(record) = self.records.get(&id) else {
            return Err(RelocateError::RecordMissing(id));
        };
        let to = self
            .pick_target(record.node)
            .ok_or(RelocateError::NoTargetNode(id))?;
        self.queue
            .try_send(Relocation { stream: id, to })
            .map_err(|e| match e {
                TrySendError::Full(_) | TrySendError::Disconnected(_) => {
                    RelocateError::QueueFull { stream: id, to }
                }
            })?;
        Ok(to)
    }
}

/// Sends a relocation the queue had no room for, waiting for room: with
/// the workers stalled it never returns, and `lastwords::in_flight()` (or
/// the `stuck` record) says so.
#[lastwords::exit_path(level = "debug", label = "relocate_blocking")]
fn relocate_blocking(queue: &SyncSender<Relocation>, relocation: Relocation) -> bool {
    queue.send(relocation).is_ok()
}

/// A worker node: applies relocations slowly, so the queue fills up. With
/// `stall`, it stops after a few (a worker wedged on a dead node).
fn worker(queue: Arc<Mutex<Receiver<Relocation>>>, stall: bool) {
    let mut done = 0;
    loop {
        if stall && done == 3 {
            lastwords::crumb!("worker stalled");
            loop {
                thread::park();
            }
        }
        done += 1;
        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(relocation) = next else { return };
        thread::sleep(Duration::from_millis(3));
        tracing::info!(
            stream = relocation.stream,
            node = relocation.to,
            "stream relocated"
        );
    }
}

fn main() -> ExitCode {
    let stall = std::env::args().any(|a| a == "--stall");
    if let Err(e) = lastwords::init()
        .stuck_after(Duration::from_secs(2))
        .install()
    {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let (tx, rx) = sync_channel(QUEUE);
    let rx = Arc::new(Mutex::new(rx));
    lastwords::crumb!("starting the worker pool", workers = 2);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let rx = Arc::clone(&rx);
            thread::spawn(move || worker(rx, stall))
        })
        .collect();

    // Every 7th stream was dropped from the tracker's records: the bug
    // behind "streams lost silently".
    let records = (0..STREAMS)
        .filter(|id| id % 7 != 3)
        .map(|id| (id, StreamRecord { node: id % NODES }))
        .collect();
    let tracker = Tracker {
        records,
        load: Mutex::new(HashMap::new()),
        queue: tx,
    };

    if stall {
        // What a liveness probe would do: look at the calls in flight,
        // and end the process when a relocation has been stuck too long.
        thread::spawn(|| loop {
            thread::sleep(Duration::from_millis(500));
            let stuck = lastwords::in_flight()
                .into_iter()
                .find(|f| f.oldest_age_ms >= 3000);
            if let Some(f) = stuck {
                println!(
                    "{}: {} calls in flight, oldest {} ms: giving up",
                    f.function, f.count, f.oldest_age_ms
                );
                lastwords::exit(2);
            }
        });
    }
    let mut moved = 0;
    for id in 0..STREAMS {
        match tracker.relocate(id) {
            Ok(_) => moved += 1,
            Err(RelocateError::QueueFull { stream: id, to }) => {
                // Retry with a blocking send; the breadcrumbs show where the
                // rebalancer waited if it never comes back.
                lastwords::crumb!("relocation queue full: blocking send", stream = id);
                if relocate_blocking(&tracker.queue, Relocation { stream: id, to }) {
                    moved += 1;
                }
                lastwords::crumb!("blocking send returned", stream = id);
            }
            Err(_) => {}
        }
    }
    drop(tracker);
    for handle in workers {
        // A worker that panicked has its panic recorded by the hook already.
        let _ = handle.join();
    }
    tracing::info!(moved, of = STREAMS, "rebalance finished");
    println!("relocated {moved} of {STREAMS} streams; see the fn_exit records for the rest");
    // What a health endpoint would serve: every way out, how often.
    for c in lastwords::exit_counts() {
        println!(
            "{:>5} × {} via {} at line {}",
            c.n, c.function, c.site, c.line
        );
    }
    ExitCode::SUCCESS
}
