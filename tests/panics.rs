//! Panics with lastwords, run for real in a child process
//! (`examples/panic_child.rs`), each compared with the same child without
//! lastwords:
//!
//! 1. build the child (a no-op when it is up to date);
//! 2. run a scenario with lastwords, then without; kill it with SIGKILL once
//!    it prints `ready` where the scenario is about a killed run;
//! 3. compare what the parent saw (status, signal, stdout), parse every
//!    line of the log, and for killed runs start the child again on the
//!    same file and read its `previous_run`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use child::read_records;
use serde_json::Value;

#[path = "support/child.rs"]
mod child;

/// The child of these tests.
fn child_exe() -> PathBuf {
    child::example("panic_child")
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    child::scratch("panic-tests", name)
}

/// How long a child may take before the test gives up on it.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What the parent saw of one child run.
#[derive(Debug)]
struct Outcome {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs `scenario` writing to `log`; with `kill`, sends SIGKILL once the
/// child prints `ready`.
fn run(scenario: &str, log: &Path, lastwords: bool, kill: bool) -> Outcome {
    let mut cmd = Command::new(child_exe());
    cmd.arg(scenario)
        .env("LASTWORDS_PATH", log)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !lastwords {
        cmd.env("PANIC_NO_LASTWORDS", "1");
    }
    let mut child = cmd.spawn().expect("run panic_child");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        // Ignored: a killed child leaves what it wrote; that's all.
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut out = String::new();
    if kill {
        loop {
            let mut line = String::new();
            let n = stdout.read_line(&mut line).expect("read stdout");
            out.push_str(&line);
            if n == 0 || line == "ready\n" {
                break;
            }
        }
        assert!(out.ends_with("ready\n"), "{scenario}: never ready: {out}");
        child.kill().expect("SIGKILL the child");
    }
    let out_reader = std::thread::spawn(move || {
        // Ignored: as for stderr.
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            // Ignored: the child may have exited meanwhile.
            let _ = child.kill();
            panic!("child {scenario} timed out");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Outcome {
        status,
        stdout: out_reader.join().expect("stdout reader"),
        stderr: err_reader.join().expect("stderr reader"),
    }
}

/// Runs `scenario` with lastwords and without, checks that the parent sees
/// the same status, signal and stdout, and returns the run with lastwords.
fn run_both(name: &str, scenario: &str, kill: bool) -> (Outcome, PathBuf) {
    let dir = scratch(name);
    let log = dir.join("log.jsonl");
    let with = run(scenario, &log, true, kill);
    let baseline = dir.join("baseline.jsonl");
    let without = run(scenario, &baseline, false, kill);
    assert_eq!(
        (with.status.code(), with.status.signal(), &with.stdout),
        (
            without.status.code(),
            without.status.signal(),
            &without.stdout
        ),
        "{scenario}: the parent sees a difference with lastwords\n{}\n---\n{}",
        with.stderr,
        without.stderr
    );
    assert!(!baseline.exists(), "the baseline must not write a log");
    (with, log)
}

/// Starts the child again on `log` and returns that start's
/// `previous_run`.
fn next_start_says(log: &Path) -> Value {
    let out = run("start", log, true, false);
    assert!(out.status.success(), "{}", out.stderr);
    let records = read_records(log);
    let start = records
        .iter()
        .rev()
        .find(|r| r["kind"] == "process_start")
        .expect("the new process_start");
    start["previous_run"].clone()
}

fn earlier_kinds(previous: &Value) -> Vec<&str> {
    previous["earlier"]
        .as_array()
        .unwrap_or_else(|| panic!("no earlier: {previous}"))
        .iter()
        .map(|e| e["kind"].as_str().expect("kind"))
        .collect()
}

#[test]
fn a_thread_panic_the_service_outlived_is_not_how_it_ended() {
    let (out, log) = run_both("thread_panic", "thread_panic_then_serve", true);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert_eq!(out.stdout, "worker panicked: true\nready\n");
    let records = read_records(&log);
    let panics: Vec<&Value> = records.iter().filter(|r| r["kind"] == "panic").collect();
    assert_eq!(panics.len(), 1, "{panics:?}");
    assert!(records.iter().any(|r| r["message"] == "still serving"));

    let previous = next_start_says(&log);
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    assert_eq!(earlier_kinds(&previous), ["panic"], "{previous}");
    let earlier = &previous["earlier"][0];
    assert_eq!(earlier["message"], "worker died");
    assert_eq!(earlier["thread"], "worker");
    assert_eq!(earlier["seq"], panics[0]["seq"]);
    assert_eq!(earlier["timestamp"], panics[0]["timestamp"]);
    assert!(earlier["location"]
        .as_str()
        .is_some_and(|l| l.starts_with("examples/panic_child.rs:")));
}

#[test]
fn a_signal_the_application_handled_is_not_how_it_ended() {
    let (out, log) = run_both("handled_sighup", "handled_sighup_then_serve", true);
    assert_eq!(out.status.signal(), Some(libc::SIGKILL));
    assert_eq!(out.stdout, "reloaded: true\nready\n");
    let records = read_records(&log);
    let signals: Vec<&Value> = records.iter().filter(|r| r["kind"] == "signal").collect();
    assert_eq!(signals.len(), 1, "{signals:?}");
    assert_eq!(signals[0]["signal"], "SIGHUP");

    let previous = next_start_says(&log);
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    assert_eq!(previous.get("signal"), None, "{previous}");
    assert_eq!(earlier_kinds(&previous), ["signal"], "{previous}");
    assert_eq!(previous["earlier"][0]["signal"], "SIGHUP");
    assert_eq!(previous["earlier"][0]["seq"], signals[0]["seq"]);
}

/// Another layer holds the panicking span's lock when the hook runs: one
/// `panic` record, with the span, and nothing from lastwords' own reading
/// of it.
#[test]
fn a_panic_while_another_layer_holds_the_span_gives_exactly_one_record() {
    let (out, log) = run_both("locked_span", "panic_in_a_locked_span", false);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "caught: true\n");
    let records = read_records(&log);
    let panics: Vec<&Value> = records.iter().filter(|r| r["kind"] == "panic").collect();
    assert_eq!(panics.len(), 1, "{panics:#?}");
    assert_eq!(panics[0]["message"], "broken Debug");
    assert_eq!(panics[0]["thread"], "main");
    assert_eq!(
        panics[0]["span"],
        serde_json::json!({"name": "conn", "peer": 7})
    );
    assert!(records.iter().any(|r| r["message"] == "after the panic"));
    assert!(!out.stderr.contains("poisoned"), "{}", out.stderr);

    let previous = next_start_says(&log);
    assert_eq!(previous["ended"], "exit", "{previous}");
    assert_eq!(previous["panic"]["message"], "broken Debug", "{previous}");
    assert_eq!(earlier_kinds(&previous), ["panic"], "{previous}");
}

/// Resident memory stays flat over 10,000 caught panics, as without
/// lastwords, and each panic costs about what it costs without lastwords
/// (printed; timing is not asserted on a shared machine).
#[test]
fn caught_panics_keep_memory_flat() {
    let dir = scratch("rss");
    let parse = |out: &Outcome| -> (u64, u64, f64) {
        assert!(out.status.success(), "{}", out.stderr);
        let line = out.stdout.trim();
        let rest = line.strip_prefix("rss_kib=").expect(line);
        let mut parts = rest.split([' ', '=']);
        let before = parts.next().and_then(|n| n.parse().ok()).expect(line);
        let after = parts.next().and_then(|n| n.parse().ok()).expect(line);
        let us = parts.nth(1).and_then(|n| n.parse().ok()).expect(line);
        (before, after, us)
    };
    let log = dir.join("log.jsonl");
    let with = run("rss", &log, true, false);
    let without = run("rss", &dir.join("baseline.jsonl"), false, false);
    let (before, after, us) = parse(&with);
    let (base_before, base_after, base_us) = parse(&without);
    eprintln!(
        "10,000 caught panics: with lastwords RSS {before} -> {after} KiB, {us:.1} us/panic; \
         without {base_before} -> {base_after} KiB, {base_us:.1} us/panic"
    );
    assert!(
        after.saturating_sub(before) < 8 * 1024,
        "RSS grew by {} KiB over 10,000 caught panics",
        after - before
    );
    // Nor a one-time jump in the first panics (debug information loaded
    // to resolve backtraces stays resident): the same as without lastwords.
    assert!(
        after < base_after + 8 * 1024,
        "RSS {after} KiB with lastwords, {base_after} KiB without"
    );
    // Every panic has its record.
    let panics = read_records(&log)
        .iter()
        .filter(|r| r["kind"] == "panic")
        .count();
    assert_eq!(panics, 11_000);
    // Generous: a sign of a thread per panic or a resolved backtrace
    // (milliseconds each), not a timing test.
    assert!(
        us < base_us + 1_000.0,
        "{us:.1} us vs {base_us:.1} us per panic"
    );
}

/// `RUST_BACKTRACE=1` users get the backtrace in the record, as std prints
/// it; without it the record says the backtrace is disabled, as std's
/// `Backtrace` does.
#[test]
fn the_backtrace_follows_rust_backtrace() {
    let dir = scratch("backtrace");
    for (setting, wanted) in [
        (None, false),
        (Some("0"), false),
        (Some("1"), true),
        (Some("full"), true),
    ] {
        let log = dir.join(format!("{setting:?}.jsonl"));
        let mut cmd = Command::new(child_exe());
        cmd.arg("thread_panic_then_serve")
            .env("LASTWORDS_PATH", &log)
            .env_remove("RUST_BACKTRACE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(value) = setting {
            cmd.env("RUST_BACKTRACE", value);
        }
        let mut child = cmd.spawn().expect("run panic_child");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        while stdout.read_line(&mut line).expect("read stdout") > 0 && !line.ends_with("ready\n") {}
        child.kill().expect("SIGKILL");
        let out = child.wait_with_output().expect("wait");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let records = read_records(&log);
        let panic = records
            .iter()
            .find(|r| r["kind"] == "panic")
            .expect("a panic record");
        let backtrace = panic["backtrace"].as_str().expect("backtrace");
        if wanted {
            assert!(
                backtrace.contains("panic_child::"),
                "{setting:?}: {backtrace}"
            );
            assert!(stderr.contains("stack backtrace"), "{setting:?}: {stderr}");
        } else {
            assert_eq!(backtrace, "disabled backtrace", "{setting:?}");
            assert!(!stderr.contains("stack backtrace"), "{setting:?}: {stderr}");
        }
    }
}
