//! The hooks' own records — `panic`, `signal`, `fatal_signal`,
//! `process_exit` — go to the flight recorder's ring as well as to the
//! file, so that the ring alone tells how a run ended; and having their
//! `seq`, they are never recovered into the file a second time.
//!
//! Each case runs in a child: this test binary started again with
//! `LASTWORDS_ENDING_CHILD` naming the ending, running only [`child`],
//! which logs debug records that only the ring keeps and then ends that
//! way. The parent looks for each ending record's line, byte for byte, in
//! the ring file, then starts a run again on the same log and checks that
//! only the debug records were recovered.

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde_json::Value;

/// The variable that makes this binary a child, naming its ending.
const CHILD: &str = "LASTWORDS_ENDING_CHILD";

/// Debug records each child logs before its ending.
const DEBUG_RECORDS: u64 = 40;

/// A fresh directory for one case's files.
fn scratch(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .ancestors()
        .nth(2)
        .expect("profile dir")
        .join("recorder-endings-tests")
        .join(name);
    // Ignored: the directory may not exist yet.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Runs the child with `case` on `log`; returns how it ended.
fn run(case: &str, log: &Path) -> ExitStatus {
    Command::new(std::env::current_exe().expect("current_exe"))
        .args(["--exact", "child", "--nocapture", "--test-threads=1"])
        .env(CHILD, case)
        .env("LASTWORDS_PATH", log)
        .env_remove("RUST_LOG")
        .output()
        .expect("run child")
        .status
}

/// The child's side. Does nothing in the parent's own test run.
#[test]
fn child() {
    let Ok(case) = std::env::var(CHILD) else {
        return;
    };
    lastwords::init()
        .filter("info")
        .recorder_filter("debug")
        .mirror(false)
        .install()
        .expect("lastwords");
    if case == "start" {
        return;
    }
    for i in 0..DEBUG_RECORDS {
        tracing::debug!(i, "only in the ring");
    }
    match case.as_str() {
        "panic" => {
            // Caught, so that the panic record is the run's last: the test
            // harness would exit after an uncaught one.
            let _ = std::panic::catch_unwind(|| panic!("the child panics"));
            // SAFETY: raise(3) ends this process; nothing runs after it.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        "exit" => std::process::exit(3),
        // SAFETY: raise(3) of a signal lastwords handles; its handler
        // records, then ends the process as the signal would.
        "sigterm" => unsafe {
            libc::raise(libc::SIGTERM);
        },
        "abort" => std::process::abort(),
        other => panic!("unknown case {other}"),
    }
    unreachable!("the child ends above");
}

/// Every line of `log`, with its parsed record.
fn lines(log: &Path) -> Vec<(String, Value)> {
    std::fs::read_to_string(log)
        .expect("read log")
        .lines()
        .map(|line| {
            let rec = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            (line.to_owned(), rec)
        })
        .collect()
}

/// Runs `case`, checks how it ended with `ended`, then checks that the
/// ring holds each of `kinds`' records as the file has it, and that the
/// next start recovers the debug records and nothing else.
fn check(case: &str, ended: impl Fn(&ExitStatus) -> bool, kinds: &[&str], previous: &str) {
    let dir = scratch(case);
    let log = dir.join("app.jsonl");
    let status = run(case, &log);
    assert!(ended(&status), "{case}: {status:?}");

    // Before the next start takes the ring file over.
    let ring = std::fs::read(dir.join("app.ring")).expect("read the ring file");
    let before = lines(&log);
    for kind in kinds {
        let (line, rec) = before
            .iter()
            .find(|(_, r)| r["kind"] == *kind)
            .unwrap_or_else(|| panic!("{case}: no {kind} record in the file"));
        assert!(rec["seq"].is_u64(), "{line}");
        let mut wanted = line.clone().into_bytes();
        wanted.push(b'\n');
        assert!(
            ring.windows(wanted.len()).any(|w| w == wanted),
            "{case}: the ring lacks the file's {kind} record {line}"
        );
    }

    assert!(run("start", &log).success());
    let after = lines(&log);
    let start = after
        .iter()
        .rposition(|(_, r)| r["kind"] == "process_start")
        .expect("the second start");
    let recovered: Vec<&Value> = after
        .iter()
        .map(|(_, r)| r)
        .filter(|r| r.get("recovered").is_some())
        .collect();
    let previous_run = &after[start].1["previous_run"];
    assert_eq!(previous_run["ended"], previous, "{previous_run}");
    if previous == "exit" {
        // A run that exited gets no copy.
        assert!(recovered.is_empty(), "{recovered:?}");
    } else {
        let is: Vec<u64> = recovered.iter().map(|r| r["i"].as_u64().unwrap()).collect();
        assert_eq!(is, (0..DEBUG_RECORDS).collect::<Vec<_>>());
        assert_eq!(previous_run["recovered_records"], DEBUG_RECORDS);
    }
    // Nothing twice: the file's lines before the start are unchanged, and
    // each ending record is there once.
    assert_eq!(&after[..before.len()], &before[..]);
    let dead_run = &before.last().expect("the dead run's records").1["run_id"];
    for kind in kinds {
        let n = after
            .iter()
            .filter(|(_, r)| r["kind"] == *kind && r["run_id"] == *dead_run)
            .count();
        assert_eq!(n, 1, "{case}: {n} {kind} records");
    }
}

#[test]
fn a_panic_is_in_the_ring_and_recovered_once() {
    check(
        "panic",
        |s| s.signal() == Some(libc::SIGKILL),
        &["panic"],
        "panic",
    );
}

#[test]
fn an_exit_is_in_the_ring() {
    check("exit", |s| s.code() == Some(3), &["process_exit"], "exit");
}

#[test]
fn a_termination_signal_is_in_the_ring_and_recovered_once() {
    check(
        "sigterm",
        |s| s.signal() == Some(libc::SIGTERM),
        &["signal"],
        "signal",
    );
}

#[test]
fn a_fatal_signal_is_in_the_ring_and_recovered_once() {
    check(
        "abort",
        |s| s.signal() == Some(libc::SIGABRT),
        &["fatal_signal"],
        "fatal_signal",
    );
}
