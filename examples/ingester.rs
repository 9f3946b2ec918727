//! An ingester that "restarts every 30 s and the logs say nothing", annotated
//! with lastwords so that the log says which task ended first and how.
//!
//! Three long-running tasks (firehose, backfill, labeler) run in a
//! `tokio::select!`; each run function is `#[exit_path(unexpected)]`, since
//! any exit at all is a bug. `--scenario` chooses how the run ends
//! (default: `task-error`):
//!
//! | scenario     | what happens                                                   |
//! |--------------|----------------------------------------------------------------|
//! | `task-error` | the firehose's `?` deep in its connection loop returns `Err`   |
//! | `task-panic` | the labeler panics on a malformed label                        |
//! | `loop-bug`   | the backfill's "never-ending" loop returns `Ok(())`            |
//! | `killed`     | the process is SIGKILLed (as by the OOM killer) after startup  |
//! | `healthy`    | runs until SIGTERM, then shuts down gracefully                 |
//! | `oom`        | a task allocates until the OOM killer ends the process         |
//!
//! ```sh
//! cargo run --example ingester -- --scenario task-error
//! jq -c 'select(.kind == "fn_exit") | {fn, site, line, outcome, error}' logs/ingester.jsonl
//! cargo run --example ingester -- --scenario killed     # dies of SIGKILL, no last word
//! cargo run --example ingester -- --scenario loop-bug   # its process_start reports the kill
//! jq -c 'select(.kind == "process_start") | .previous_run' logs/ingester.jsonl
//! ```
//!
//! Before it is killed, the `killed` scenario logs debug records that the
//! file (filter `info`) does not get and the flight recorder keeps. The next
//! start copies them into the log, oldest first, marked `"recovered":true`,
//! just before its `process_start`; the killed run prints the command that
//! shows them:
//!
//! ```sh
//! jq -c 'select(.recovered) | {timestamp, level, message, batch}' logs/ingester.jsonl
//! ```
//!
//! `oom` needs a memory limit, or it would take the machine's memory; run it
//! under one, then start any scenario again: its `process_start` says
//! `cause: "oom_kill"` with the kernel's evidence, and the flight recorder's
//! last debug records of the dead run come just before it, marked
//! `"recovered":true`:
//!
//! ```sh
//! systemd-run --scope -p MemoryMax=64M cargo run --example ingester -- --scenario oom
//! cargo run --example ingester -- --scenario healthy
//! jq -c 'select(.recovered) | {timestamp, message, held_mib}' logs/ingester.jsonl
//! ```
//!
//! The log goes to `$LASTWORDS_PATH`, else `logs/ingester.jsonl`. The example
//! prints `ready` on stdout once it has entered the select.

use std::error::Error;
use std::fmt;
use std::io;
use std::process::ExitCode;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::time::sleep;

/// How each run ends; see the module docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    TaskError,
    TaskPanic,
    LoopBug,
    Killed,
    Healthy,
    Oom,
}

impl Scenario {
    const ALL: [(&'static str, Scenario); 6] = [
        ("task-error", Scenario::TaskError),
        ("task-panic", Scenario::TaskPanic),
        ("loop-bug", Scenario::LoopBug),
        ("killed", Scenario::Killed),
        ("healthy", Scenario::Healthy),
        ("oom", Scenario::Oom),
    ];

    fn from_args() -> Result<Scenario, String> {
        let usage = || {
            let names: Vec<_> = Scenario::ALL.iter().map(|(name, _)| *name).collect();
            format!("usage: ingester --scenario {}", names.join("|"))
        };
        let mut args = std::env::args().skip(1);
        match (args.next().as_deref(), args.next(), args.next()) {
            (Some("--scenario"), Some(name), None) => Scenario::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, s)| *s)
                .ok_or_else(usage),
            // Without arguments: the first story, a task's `?` ends the run.
            (None, _, _) => Ok(Scenario::TaskError),
            _ => Err(usage()),
        }
    }
}

/// One simulated step of work: every task does one unit of work per tick.
const TICK: Duration = Duration::from_millis(20);
/// The tick at which the scenario's fault fires (about 300 ms after start).
const FAULT_AT: u64 = 15;

/// The ingester's error: a connection that failed, with the I/O error as its
/// source, so the log shows the whole chain.
#[derive(Debug)]
enum IngestError {
    Connection { host: String, source: io::Error },
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IngestError::Connection { host, .. } => write!(f, "connection to {host} failed"),
        }
    }
}

impl Error for IngestError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            IngestError::Connection { source, .. } => Some(source),
        }
    }
}

/// A simulated firehose connection: yields frames, and in the `task-error`
/// scenario the peer resets it at frame `FAULT_AT`.
struct Connection {
    host: String,
    frames: u64,
    reset_at: Option<u64>,
}

struct Frame {
    seq: u64,
}

impl Connection {
    async fn open(host: &str, reset_at: Option<u64>) -> Result<Connection, IngestError> {
        sleep(TICK).await;
        Ok(Connection {
            host: host.to_owned(),
            frames: 0,
            reset_at,
        })
    }

    async fn next_frame(&mut self) -> Result<Frame, IngestError> {
        sleep(TICK).await;
        self.frames += 1;
        if Some(self.frames) == self.reset_at {
            return Err(IngestError::Connection {
                host: self.host.clone(),
                source: io::Error::new(io::ErrorKind::ConnectionReset, "peer reset the stream"),
            });
        }
        Ok(Frame { seq: self.frames })
    }
}

const FRAMES_PER_CONNECTION: u64 = 1_000;

/// Reads frames from every host forever.
#[lastwords::exit_path(unexpected)]
async fn run_firehose(hosts: Vec<String>, reset_at: Option<u64>) -> Result<(), IngestError> {
    loop {
        for host in &hosts {
            let mut conn = Connection::open(host, reset_at).await?;
            for _ in 0..FRAMES_PER_CONNECTION {
                let frame = conn.next_frame().await?;
                if frame.seq % 10 == 0 {
                    tracing::info!(host = %host, frame = frame.seq, "firehose progress");
                }
            }
        }
    }
}

/// The historical store the backfill pages through; in the `loop-bug`
/// scenario it runs dry after `FAULT_AT` batches (the backfill caught up).
struct Store {
    dry_after: Option<u64>,
}

impl Store {
    async fn next_batch(&self, cursor: u64) -> Result<Vec<u64>, IngestError> {
        sleep(TICK).await;
        if self.dry_after.is_some_and(|n| cursor >= n * 8) {
            return Ok(Vec::new());
        }
        Ok((cursor..cursor + 8).collect())
    }
}

/// Pages through history forever, polling again when it has caught up.
#[lastwords::exit_path(unexpected)]
async fn run_backfill(store: Store) -> Result<(), IngestError> {
    let mut cursor = 0;
    loop {
        let batch = store.next_batch(cursor).await?;
        if batch.is_empty() {
            // The bug under study: "caught up" must mean "wait and poll
            // again", but this returns and the task is gone.
            return Ok(());
        }
        cursor += batch.len() as u64;
        if cursor % 80 == 0 {
            tracing::info!(cursor, "backfill stored batch");
        }
    }
}

/// Where the labeler's input comes from; in the `task-panic` scenario label
/// `FAULT_AT` is malformed.
struct LabelFeed {
    next: u64,
    malformed_at: Option<u64>,
}

impl LabelFeed {
    async fn next_label(&mut self) -> String {
        sleep(TICK).await;
        self.next += 1;
        if Some(self.next) == self.malformed_at {
            return "spam=??".to_owned();
        }
        format!("spam={}", self.next % 7)
    }
}

/// A label as `name=score`; the input is trusted, which is the bug.
fn parse_label(line: &str) -> (&str, u8) {
    let (name, score) = line.split_once('=').unwrap_or((line, "0"));
    let score: u8 = score.parse().expect("label score is a number");
    (name, score)
}

/// Applies labels forever.
#[lastwords::exit_path(unexpected)]
async fn run_labeler(mut feed: LabelFeed) -> Result<(), IngestError> {
    loop {
        let line = feed.next_label().await;
        let (name, score) = parse_label(&line);
        if feed.next % 10 == 0 {
            tracing::info!(label = name, score, "labeler applied label");
        }
    }
}

/// Debug records the `killed` scenario logs before its death: only the
/// flight recorder keeps them, and the next start recovers them.
const LAST_BATCHES: u64 = 5;

/// Stands in for the OOM killer: SIGKILL leaves no chance to write anything.
/// The flight recorder keeps what led there: a few debug records, which the
/// file does not get.
async fn kill_self_later() {
    sleep(TICK * FAULT_AT as u32).await;
    for batch in 1..=LAST_BATCHES {
        tracing::debug!(batch, pending = 100 * batch, "buffering a batch in memory");
    }
    lastwords::crumb!("about to be killed with SIGKILL");
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(std::process::id() as libc::pid_t, libc::SIGKILL);
    }
}

/// Spawns the three tasks, waits for the first one to end (or SIGTERM) and
/// says which one it was.
async fn serve(scenario: Scenario) -> io::Result<ExitCode> {
    // Registered before `ready` so that a SIGTERM sent then is handled.
    let mut terminate = signal(SignalKind::terminate())?;

    lastwords::crumb!("spawning firehose, backfill and labeler", task_count = 3);
    let hosts = vec![
        "relay-1.example:443".to_owned(),
        "relay-2.example:443".to_owned(),
    ];
    let fault = |s: Scenario| (scenario == s).then_some(FAULT_AT);
    let mut firehose = tokio::spawn(run_firehose(hosts, fault(Scenario::TaskError)));
    let mut backfill = tokio::spawn(run_backfill(Store {
        dry_after: fault(Scenario::LoopBug),
    }));
    let mut labeler = tokio::spawn(run_labeler(LabelFeed {
        next: 0,
        malformed_at: fault(Scenario::TaskPanic),
    }));
    if scenario == Scenario::Killed {
        tokio::spawn(kill_self_later());
    }
    if scenario == Scenario::Oom {
        tokio::spawn(eat_memory());
    }

    lastwords::crumb!("entering select with all three tasks", task_count = 3);
    println!("ready");
    let (task, result) = tokio::select! {
        r = &mut firehose => ("firehose", r),
        r = &mut backfill => ("backfill", r),
        r = &mut labeler => ("labeler", r),
        _ = terminate.recv() => {
            tracing::info!("SIGTERM received: shutting down");
            for task in [&firehose, &backfill, &labeler] {
                task.abort();
            }
            // Each aborted task ends with a JoinError "cancelled"; waiting
            // for them makes sure their `fn_exit` records are written.
            let _ = tokio::join!(firehose, backfill, labeler);
            tracing::info!("shutdown complete");
            return Ok(ExitCode::SUCCESS);
        }
    };
    match result {
        Ok(Ok(())) => tracing::error!(task, "task returned Ok(()) but should run forever"),
        Ok(Err(e)) => tracing::error!(task, error = &e as &dyn Error, "task failed"),
        Err(e) => tracing::error!(task, panicked = e.is_panic(), "task died: {e}"),
    }
    Ok(ExitCode::FAILURE)
}

fn main() -> ExitCode {
    let scenario = match Scenario::from_args() {
        Ok(scenario) => scenario,
        Err(usage) => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    if scenario == Scenario::Oom && memory_limit().is_none() {
        eprintln!(
            "ingester: --scenario oom allocates until the OOM killer ends it; run it under a \
             memory limit:\n  systemd-run --scope -p MemoryMax=64M cargo run --example ingester \
             -- --scenario oom\n  docker run -m 64m …"
        );
        return ExitCode::from(2);
    }
    let lastwords = match lastwords::init().install() {
        Ok(lastwords) => lastwords,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "ingester: scenario {scenario:?}, logging to {}",
        lastwords.path().display()
    );
    if scenario == Scenario::Killed {
        // Said now: nothing runs after the SIGKILL.
        println!(
            "after the next start, the debug records the flight recorder kept before the kill:\n  jq -c 'select(.recovered) | {{timestamp, level, message, batch}}' {}",
            lastwords.path().display()
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = &e as &dyn Error, "cannot start the tokio runtime");
            return ExitCode::from(2);
        }
    };
    let code = runtime.block_on(serve(scenario));
    // Dropping the runtime cancels the tasks still running: their `fn_exit`
    // records say `cancelled`, after the record of the task that ended first.
    drop(runtime);
    println!(
        "which task ended first, where and how:\n  jq -c 'select(.kind == \"fn_exit\" or .kind == \"panic\" or .kind == \"process_exit\") | {{kind, fn, site, line, outcome, error, location, exit_code}}' {}",
        lastwords.path().display()
    );
    code.unwrap_or_else(|e| {
        tracing::error!(error = &e as &dyn Error, "cannot listen for SIGTERM");
        ExitCode::from(2)
    })
}

// ---- The `oom` scenario ------------------------------------------------

/// Allocates 1 MiB at a time, touching every page, with a debug record for
/// each: the file (filter `info`) gets none of them, the flight recorder all.
async fn eat_memory() {
    sleep(TICK * FAULT_AT as u32).await;
    lastwords::crumb!("allocating until the OOM killer comes");
    let mut held: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 1 << 20];
        for page in block.iter_mut().step_by(4096) {
            *page = 1;
        }
        held.push(block);
        tracing::debug!(held_mib = held.len(), "allocated another MiB");
        if held.len() % 16 == 0 {
            tracing::info!(held_mib = held.len(), "still allocating");
        }
        tokio::task::yield_now().await;
    }
}

/// This process's memory cgroup limit in bytes (cgroup v1 or v2), if any.
fn memory_limit() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let candidates = cgroups.lines().filter_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            Some(format!(
                "/sys/fs/cgroup/memory/{path}/memory.limit_in_bytes"
            ))
        } else if controllers.is_empty() {
            Some(format!("/sys/fs/cgroup/{path}/memory.max"))
        } else {
            None
        }
    });
    candidates
        .filter_map(|file| {
            std::fs::read_to_string(file)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()
        })
        // cgroup v1 says "unlimited" with the largest page-aligned i64.
        .find(|&limit| limit < 1 << 62)
}
