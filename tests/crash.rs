//! The crash matrix: every way a process can end, each in a child process.
//!
//! Each test:
//!
//! 1. runs `examples/crash_child.rs` (built by `cargo test` next to this
//!    test binary) with a scenario, `LASTWORDS_PATH` pointing into a fresh
//!    directory under the target directory, and `CRASH_RECORDS` numbered
//!    records to log first;
//! 2. for signals, waits for the child's `ready` line, then sends the
//!    signal with `kill(2)`;
//! 3. waits for the child with a timeout and checks its exit status or
//!    death signal, and that it is the same when the child runs without
//!    lastwords (`CRASH_NO_LASTWORDS=1`);
//! 4. parses every complete line of the JSONL with `serde_json`, checks
//!    that `seq` runs 1..=N with no gap, the terminal record's kind and
//!    details, and the mirror line on the child's stderr.
//!
//! Nothing here forks the test harness: children are separate executables.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use child::read_records;
use serde_json::Value;

#[path = "support/child.rs"]
mod child;

/// Numbered records each child logs before it ends.
const RECORDS: u64 = 200;
/// How long a child may take before the test gives up on it.
const TIMEOUT: Duration = Duration::from_secs(60);

/// `target/` (this test runs as `target/debug/deps/crash-…`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors().nth(3).expect("target dir").to_owned()
}

/// The child, built for this profile. `cargo test` builds examples, but
/// `cargo test --test crash` does not: build it here (a no-op when it is
/// up to date) so the child is never missing or stale.
fn child_exe() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("current_exe");
            let profile_dir = exe.ancestors().nth(2).expect("profile dir");
            let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
                Some("debug") => "dev",
                Some(other) => other,
                None => "dev",
            };
            build_child(profile);
            profile_dir.join("examples/crash_child")
        })
        .clone()
}

/// `cargo build --profile <profile> --example crash_child` into this
/// target directory.
fn build_child(profile: &str) {
    let status = Command::new(env!("CARGO"))
        .args([
            "build",
            "--quiet",
            "--profile",
            profile,
            "--example",
            "crash_child",
        ])
        .arg("--target-dir")
        .arg(target_dir())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building crash_child ({profile}) failed");
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    let dir = target_dir().join("crash-tests").join(name);
    // Ignored: the directory may not exist yet.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// How one child run went.
struct Outcome {
    status: ExitStatus,
    #[allow(dead_code)] // for scenarios that report on stdout
    stdout: String,
    stderr: String,
}

/// A child to run: which binary, which scenario, where it logs.
struct Run<'a> {
    exe: PathBuf,
    scenario: &'a str,
    log: PathBuf,
    lastwords: bool,
    signal: Option<libc::c_int>,
    /// Signal dispositions set to "ignore" before exec (as `nohup` does).
    ignore: &'a [libc::c_int],
    /// A second signal, sent 300 ms after `signal`.
    follow_up: Option<libc::c_int>,
    records: u64,
    /// Run the child as PID 1 of a new PID namespace, under
    /// `unshare --pid --fork --mount-proc`; signals go to the child itself,
    /// not to `unshare`.
    pid1: bool,
}

impl<'a> Run<'a> {
    fn new(scenario: &'a str, log: &Path) -> Run<'a> {
        Run {
            exe: child_exe(),
            scenario,
            log: log.to_owned(),
            lastwords: true,
            signal: None,
            ignore: &[],
            follow_up: None,
            records: RECORDS,
            pid1: false,
        }
    }

    fn go(&self) -> Outcome {
        let mut cmd = if self.pid1 {
            let mut cmd = Command::new("unshare");
            cmd.args(["--pid", "--fork", "--mount-proc"]).arg(&self.exe);
            cmd
        } else {
            Command::new(&self.exe)
        };
        cmd.arg(self.scenario)
            .env("LASTWORDS_PATH", &self.log)
            .env("CRASH_RECORDS", self.records.to_string())
            .env_remove("RUST_BACKTRACE")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if !self.lastwords {
            cmd.env("CRASH_NO_LASTWORDS", "1");
        }
        let ignore: Vec<libc::c_int> = self.ignore.to_vec();
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                // The test runner may have been started with some of these
                // ignored (a background job ignores SIGINT and SIGQUIT):
                // give every child the same, default, starting point.
                for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
                    libc::signal(sig, libc::SIG_DFL);
                }
                for &sig in &ignore {
                    libc::signal(sig, libc::SIG_IGN);
                }
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
                Ok(())
            });
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            let what = if self.pid1 { "unshare" } else { "crash_child" };
            panic!("cannot run {what}: {e}")
        });
        let mut stderr = child.stderr.take().expect("stderr");
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            // Ignored: a child that dies leaves what it wrote; that's all.
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut out = String::new();
        if let Some(sig) = self.signal {
            stdout.read_line(&mut out).expect("read stdout");
            assert_eq!(out, "ready\n", "child did not get ready: {}", self.scenario);
            let target = if self.pid1 {
                only_child(child.id())
            } else {
                child.id()
            };
            // SAFETY: plain kill(2) to our own child (or unshare's).
            assert_eq!(unsafe { libc::kill(target as libc::pid_t, sig) }, 0);
            if let Some(sig) = self.follow_up {
                std::thread::sleep(Duration::from_millis(300));
                // SAFETY: as above.
                assert_eq!(unsafe { libc::kill(target as libc::pid_t, sig) }, 0);
            }
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
                panic!("child {} timed out", self.scenario);
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Outcome {
            status,
            stdout: out_reader.join().expect("stdout reader"),
            stderr: err_reader.join().expect("stderr reader"),
        }
    }
}

/// The pid, in our PID namespace, of the one child of `parent` (the crash
/// child under `unshare --fork`).
fn only_child(parent: u32) -> u32 {
    let path = format!("/proc/{parent}/task/{parent}/children");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let pids: Vec<u32> = text
        .split_whitespace()
        .map(|p| p.parse().expect("a pid"))
        .collect();
    assert_eq!(pids.len(), 1, "{path}: {text:?}");
    pids[0]
}

/// Runs `scenario` with lastwords, then without, and checks that the parent
/// sees the same ending both times. Returns the run with lastwords and its
/// records.
fn run(name: &str, scenario: &str, signal: Option<libc::c_int>) -> (Outcome, Vec<Value>) {
    let dir = scratch(name);
    let log = dir.join("log.jsonl");
    let mut run = Run::new(scenario, &log);
    run.signal = signal;
    let with = run.go();
    run.lastwords = false;
    run.log = dir.join("baseline.jsonl");
    let without = run.go();
    assert_same_ending(&with.status, &without.status, scenario);
    assert!(!run.log.exists(), "the baseline must not write a log");
    let records = read_records(&log);
    (with, records)
}

fn assert_same_ending(with: &ExitStatus, without: &ExitStatus, scenario: &str) {
    assert_eq!(
        (with.code(), with.signal()),
        (without.code(), without.signal()),
        "{scenario}: the ending differs with lastwords ({with}) and without ({without})"
    );
}

/// The records of one run (the first run in the file when `run_id` is
/// `None`), checking that their `seq` values are exactly 1..=N.
fn check_seq(records: &[Value]) -> Vec<&Value> {
    let run_id = records[0]["run_id"].as_str().expect("run_id");
    let mut run: Vec<&Value> = records.iter().filter(|r| r["run_id"] == run_id).collect();
    run.sort_by_key(|r| r["seq"].as_u64().expect("seq"));
    let seqs: Vec<u64> = run.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = (1..=run.len() as u64).collect();
    assert_eq!(seqs, want, "seq must run 1..=N with no gap");
    run
}

/// The record with the highest `seq`, after checking the sequence.
fn terminal(records: &[Value]) -> Value {
    check_seq(records)
        .last()
        .copied()
        .cloned()
        .expect("a record")
}

/// The numbered records were all written.
fn assert_numbered(records: &[Value]) {
    let numbered: Vec<u64> = records
        .iter()
        .filter(|r| {
            r["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("record "))
        })
        .map(|r| r["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(numbered, (0..RECORDS).collect::<Vec<_>>());
}

fn crumb_names(value: &Value) -> Vec<&str> {
    value
        .as_array()
        .expect("breadcrumbs array")
        .iter()
        .map(|c| c["name"].as_str().expect("breadcrumb name"))
        .collect()
}

fn kinds(records: &[Value]) -> Vec<&str> {
    records.iter().filter_map(|r| r["kind"].as_str()).collect()
}

fn assert_exit(name: &str, scenario: &str, code: i32) -> (Outcome, Vec<Value>, Value) {
    let (out, records) = run(name, scenario, None);
    assert_eq!(out.status.code(), Some(code), "{}", out.stderr);
    assert_numbered(&records);
    let last = terminal(&records);
    assert_eq!(last["kind"], "process_exit", "{last}");
    assert_eq!(last["exit_code"], code);
    assert_eq!(last["dropped_records"], 0);
    assert_eq!(crumb_names(&last["breadcrumbs"]), ["installed", "logged"]);
    let level = if code == 0 { "INFO" } else { "ERROR" };
    let mirror = format!("[lastwords] {level} process_exit: process exited with code {code}");
    assert!(
        out.stderr.contains(&mirror),
        "no mirror line in: {}",
        out.stderr
    );
    (out, records, last)
}

#[test]
fn return_ok_from_main() {
    assert_exit("ok", "ok", 0);
}

#[test]
fn return_err_from_main() {
    let (out, _, _) = assert_exit("err", "err", 1);
    assert!(
        out.stderr.contains("Error: \"the service gave up\""),
        "{}",
        out.stderr
    );
}

#[test]
fn return_exit_code_from_main() {
    assert_exit("exitcode3", "exitcode3", 3);
}

#[test]
fn process_exit_from_main() {
    assert_exit("exit7", "exit7", 7);
}

#[test]
fn lastwords_exit_records_the_caller() {
    let (_, _, last) = assert_exit("lastwords_exit", "lastwords_exit", 5);
    let location = last["location"].as_str().expect("location");
    assert!(
        location.starts_with("examples/crash_child.rs:"),
        "{location}"
    );
}

#[test]
fn process_exit_from_a_thread_while_others_log() {
    let (out, records) = run("exit_thread", "exit_thread", None);
    assert_eq!(out.status.code(), Some(7), "{}", out.stderr);
    let exit = records
        .iter()
        .find(|r| r["kind"] == "process_exit")
        .expect("process_exit record");
    assert_eq!(exit["exit_code"], 7);
    assert_eq!(exit["thread"], "exiter");
    // Every record numbered up to process_exit is in the file; records the
    // other threads logged after it may be cut off by the end.
    let last = exit["seq"].as_u64().unwrap();
    let mut seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    let present: std::collections::HashSet<u64> = seqs.iter().copied().collect();
    let missing: Vec<u64> = (1..=last).filter(|s| !present.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "missing before process_exit ({last}): {missing:?}"
    );
    seqs.dedup();
    assert_eq!(seqs.len(), records.len(), "duplicate seq");
    let concurrent = records
        .iter()
        .filter(|r| r["message"] == "concurrent record")
        .count();
    assert!(concurrent > 100, "the loggers barely ran: {concurrent}");
}

fn assert_panic_record(records: &[Value], message: &str, thread: &str) -> Value {
    let panic = records
        .iter()
        .find(|r| r["kind"] == "panic")
        .unwrap_or_else(|| panic!("no panic record: {:?}", kinds(records)))
        .clone();
    assert_eq!(panic["level"], "ERROR");
    assert_eq!(panic["message"], message);
    assert_eq!(panic["thread"], thread);
    let location = panic["location"].as_str().expect("location");
    assert!(
        location.starts_with("examples/crash_child.rs:"),
        "{location}"
    );
    assert!(panic["backtrace"].as_str().is_some_and(|b| !b.is_empty()));
    assert_eq!(crumb_names(&panic["breadcrumbs"]), ["installed", "logged"]);
    panic
}

#[test]
fn panic_in_main() {
    let (out, records) = run("panic_main", "panic_main", None);
    assert_eq!(out.status.code(), Some(101));
    assert_numbered(&records);
    assert_panic_record(&records, "boom in main", "main");
    assert_eq!(kinds(&records).iter().filter(|&&k| k == "panic").count(), 1);
    let last = terminal(&records);
    assert_eq!(last["kind"], "process_exit");
    assert_eq!(last["exit_code"], 101);
    assert!(
        out.stderr.contains("panicked at examples/crash_child.rs"),
        "std's message: {}",
        out.stderr
    );
    assert!(out.stderr.contains("[lastwords] ERROR panic: boom in main"));
}

#[test]
fn panic_in_a_spawned_thread() {
    let (out, records) = run("panic_thread", "panic_thread", None);
    assert_eq!(out.status.code(), Some(0));
    assert_panic_record(&records, "boom in a thread", "worker");
    let last = terminal(&records);
    assert_eq!(last["kind"], "process_exit");
    assert_eq!(last["exit_code"], 0);
    assert!(out
        .stderr
        .contains("[lastwords] ERROR panic: boom in a thread"));
}

#[test]
fn panic_in_a_tokio_task() {
    let (out, records) = run("panic_tokio", "panic_tokio", None);
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let panic = assert_panic_record(&records, "boom in a task", "task-worker");
    // The child runs without RUST_BACKTRACE: no backtrace, as std's
    // message (tests/panics.rs checks the record's with RUST_BACKTRACE=1).
    assert_eq!(panic["backtrace"], "disabled backtrace");
    assert!(records
        .iter()
        .any(|r| r["message"] == "task joined" && r["failed"] == true));
    assert_eq!(terminal(&records)["kind"], "process_exit");
}

/// Builds the child with `panic = "abort"` (the `panic-abort` profile).
fn abort_build_child() -> PathBuf {
    build_child("panic-abort");
    target_dir().join("panic-abort/examples/crash_child")
}

#[test]
fn panic_with_panic_abort() {
    let exe = abort_build_child();
    let dir = scratch("panic_abort");
    let mut run = Run::new("panic_main", &dir.join("log.jsonl"));
    run.exe = exe;
    let with = run.go();
    run.lastwords = false;
    run.log = dir.join("baseline.jsonl");
    let without = run.go();
    assert_same_ending(&with.status, &without.status, "panic_main (abort)");
    assert_eq!(with.status.signal(), Some(libc::SIGABRT), "{}", with.stderr);
    let records = read_records(&dir.join("log.jsonl"));
    assert_numbered(&records);
    assert_panic_record(&records, "boom in main", "main");
    let last = terminal(&records);
    assert_eq!(last["kind"], "fatal_signal");
    assert_eq!(last["signal"], "SIGABRT");
    assert!(with
        .stderr
        .contains("[lastwords] ERROR panic: boom in main"));
    assert!(with
        .stderr
        .contains("[lastwords] ERROR fatal_signal: fatal signal SIGABRT"));
}

#[test]
fn double_panic() {
    let (out, records) = run("double_panic", "double_panic", None);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
    let panics: Vec<&Value> = records.iter().filter(|r| r["kind"] == "panic").collect();
    assert!(panics.len() >= 2, "{:?}", kinds(&records));
    assert_eq!(panics[0]["message"], "first panic");
    assert_eq!(panics[1]["message"], "second panic, while unwinding");
    let last = terminal(&records);
    assert_eq!(last["kind"], "fatal_signal");
    assert_eq!(last["signal"], "SIGABRT");
}

#[test]
fn abort() {
    let (out, records) = run("abort", "abort", None);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT));
    assert_numbered(&records);
    let last = terminal(&records);
    assert_eq!(last["kind"], "fatal_signal");
    assert_eq!(last["signal"], "SIGABRT");
    assert_eq!(last["signo"], libc::SIGABRT);
    assert_eq!(crumb_names(&last["breadcrumbs"]), ["installed", "logged"]);
    assert!(out
        .stderr
        .contains("[lastwords] ERROR fatal_signal: fatal signal SIGABRT"));
}

fn assert_killed_by(name: &str, signo: libc::c_int, signame: &str) {
    let (out, records) = run(name, "wait", Some(signo));
    assert_eq!(out.status.signal(), Some(signo), "{}", out.stderr);
    assert_numbered(&records);
    let last = terminal(&records);
    assert_eq!(last["kind"], "signal");
    assert_eq!(last["level"], "WARN");
    assert_eq!(last["signal"], signame);
    assert_eq!(last["signo"], signo);
    assert_eq!(last["thread"], "main");
    assert_eq!(crumb_names(&last["breadcrumbs"]), ["installed", "logged"]);
    let mirror = format!("[lastwords] WARN signal: received {signame}");
    assert!(out.stderr.contains(&mirror), "{}", out.stderr);
}

#[test]
fn sigterm() {
    assert_killed_by("sigterm", libc::SIGTERM, "SIGTERM");
}

#[test]
fn sigint() {
    assert_killed_by("sigint", libc::SIGINT, "SIGINT");
}

#[test]
fn sighup() {
    assert_killed_by("sighup", libc::SIGHUP, "SIGHUP");
}

#[test]
fn sigquit() {
    assert_killed_by("sigquit", libc::SIGQUIT, "SIGQUIT");
}

/// Checks that this machine can run a child as PID 1 of a new PID
/// namespace, failing with the reason if not: the PID 1 tests must never
/// pass without having run.
fn assert_unshare_works() {
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .unwrap_or_else(|e| {
            panic!("the PID 1 tests need `unshare` (util-linux) and root: cannot run it: {e}")
        });
    assert!(
        out.status.success(),
        "the PID 1 tests need `unshare --pid --fork --mount-proc` (util-linux, root): {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// As PID 1 (a container's init) the kernel ignores a signal whose action
/// is the default, from outside the namespace or from the process itself:
/// with lastwords too it is ignored, and its record says so. Runs with and
/// without lastwords under `unshare --fork` (which passes the child's
/// exit status or death signal on as its own) and compares; `follow_up`
/// ends a child that would otherwise sleep on.
fn assert_pid1_ignores_sigterm(
    name: &str,
    scenario: &str,
    signal: Option<libc::c_int>,
    follow_up: Option<libc::c_int>,
) -> (Outcome, Vec<Value>) {
    assert_unshare_works();
    let dir = scratch(name);
    let log = dir.join("log.jsonl");
    let mut run = Run::new(scenario, &log);
    run.pid1 = true;
    run.signal = signal;
    run.follow_up = follow_up;
    let with = run.go();
    run.lastwords = false;
    run.log = dir.join("baseline.jsonl");
    let without = run.go();
    assert_same_ending(&with.status, &without.status, scenario);
    let records = read_records(&log);
    assert_numbered(&records);
    let run = check_seq(&records);
    let term = run
        .iter()
        .find(|r| r["kind"] == "signal")
        .unwrap_or_else(|| panic!("no signal record: {:?}", kinds(&records)));
    assert_eq!(term["signal"], "SIGTERM");
    assert_eq!(term["signo"], libc::SIGTERM);
    assert_eq!(term["ignored"], true, "{term}");
    assert_eq!(term["pid"], 1, "the child ran as PID 1");
    assert_eq!(term["thread"], "main");
    assert_eq!(crumb_names(&term["breadcrumbs"]), ["installed", "logged"]);
    assert!(
        with.stderr.contains(
            "[lastwords] WARN signal: received SIGTERM; ignored, as the kernel does for PID 1"
        ),
        "{}",
        with.stderr
    );
    (with, records)
}

#[test]
fn sigterm_to_pid_1_from_outside() {
    // SIGKILL from outside the namespace does end PID 1.
    let (out, records) = assert_pid1_ignores_sigterm(
        "pid1_term",
        "wait",
        Some(libc::SIGTERM),
        Some(libc::SIGKILL),
    );
    // What `unshare` makes of its child's SIGKILL varies with its version
    // (util-linux 2.39 fails to re-raise it and exits 1); the same with
    // and without lastwords, which `assert_pid1_ignores_sigterm` checks.
    assert!(!out.status.success(), "{}", out.status);
    assert_eq!(terminal(&records)["kind"], "signal");
}

#[test]
fn sigterm_to_pid_1_from_itself() {
    let (out, records) = assert_pid1_ignores_sigterm("pid1_term_self", "term_self", None, None);
    // The process went on past its kill(2) and returned 9.
    assert_eq!(out.status.code(), Some(9), "{}", out.stderr);
    let last = terminal(&records);
    assert_eq!(last["kind"], "process_exit");
    assert_eq!(last["exit_code"], 9);
}

#[test]
fn an_inherited_ignore_stays_ignored() {
    let dir = scratch("nohup");
    let log = dir.join("log.jsonl");
    let mut run = Run::new("wait", &log);
    run.signal = Some(libc::SIGHUP);
    run.follow_up = Some(libc::SIGTERM);
    run.ignore = &[libc::SIGHUP];
    // SIGHUP, ignored as under nohup, must neither kill nor be recorded;
    // the SIGTERM that follows ends the child.
    let out = run.go();
    assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", out.stderr);
    let records = read_records(&log);
    let signals: Vec<&Value> = records.iter().filter(|r| r["kind"] == "signal").collect();
    assert_eq!(signals.len(), 1, "{:?}", kinds(&records));
    assert_eq!(signals[0]["signal"], "SIGTERM");
}

fn assert_graceful(name: &str, scenario: &str, signo: libc::c_int, signame: &str) {
    let (out, records) = run(name, scenario, Some(signo));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let run = check_seq(&records);
    let order: Vec<&str> = run
        .iter()
        .filter(|r| r["kind"] != "event" || r["message"] == "graceful shutdown")
        .filter(|r| r["kind"] != "breadcrumb" && r["kind"] != "process_start")
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            format!("received {signame}").as_str(),
            "graceful shutdown",
            "process exited with code 0"
        ]
    );
    assert_eq!(run.last().unwrap()["kind"], "process_exit");
}

#[test]
fn sigterm_with_tokio_handler_installed_after_lastwords() {
    assert_graceful(
        "tokio_term_after",
        "tokio_term_after",
        libc::SIGTERM,
        "SIGTERM",
    );
}

#[test]
fn sigterm_with_tokio_handler_installed_before_lastwords() {
    assert_graceful(
        "tokio_term_before",
        "tokio_term_before",
        libc::SIGTERM,
        "SIGTERM",
    );
}

#[test]
fn sigint_with_tokio_ctrl_c() {
    assert_graceful("tokio_ctrl_c", "tokio_ctrl_c", libc::SIGINT, "SIGINT");
}

#[test]
fn sigsegv_from_a_null_write() {
    let (out, records) = run("segv", "segv", None);
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV));
    assert_numbered(&records);
    let last = terminal(&records);
    assert_eq!(last["kind"], "fatal_signal");
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["signal"], "SIGSEGV");
    assert_eq!(last["fault_address"], "0x0");
    assert_eq!(last["message"], "fatal signal SIGSEGV");
    // A null pointer is far from the stack pointer: not an overflow.
    assert!(
        matches!(last.get("stack_overflow"), None | Some(Value::Bool(false))),
        "{last}"
    );
    assert_eq!(crumb_names(&last["breadcrumbs"]), ["installed", "logged"]);
    assert!(out
        .stderr
        .contains("[lastwords] ERROR fatal_signal: fatal signal SIGSEGV"));
}

/// A fault raised by the CPU: the child dies of `signo` with and without
/// lastwords, and the last record is the `fatal_signal` one, with the
/// faulting address and without `stack_overflow`.
fn assert_fault(scenario: &str, signo: libc::c_int, signame: &str) -> Value {
    let (out, records) = run(scenario, scenario, None);
    assert_eq!(out.status.signal(), Some(signo), "{}", out.stderr);
    assert_numbered(&records);
    let last = terminal(&records);
    assert_eq!(last["kind"], "fatal_signal", "{last}");
    assert_eq!(last["level"], "ERROR");
    assert_eq!(last["signal"], signame);
    assert_eq!(last["signo"], signo);
    assert_eq!(last["thread"], "main");
    assert_eq!(last["message"], format!("fatal signal {signame}"));
    let address = last["fault_address"].as_str().expect("fault_address");
    assert!(address.starts_with("0x") && address != "0x0", "{last}");
    assert!(last.get("stack_overflow").is_none(), "{last}");
    assert_eq!(crumb_names(&last["breadcrumbs"]), ["installed", "logged"]);
    let mirror = format!("[lastwords] ERROR fatal_signal: fatal signal {signame}");
    assert!(out.stderr.contains(&mirror), "{}", out.stderr);
    last
}

#[test]
fn sigbus_from_reading_past_the_end_of_a_mapped_file() {
    assert_fault("sigbus", libc::SIGBUS, "SIGBUS");
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn sigill_from_an_undefined_instruction() {
    assert_fault("sigill", libc::SIGILL, "SIGILL");
}

// Only x86 traps on an integer division by zero.
#[cfg(target_arch = "x86_64")]
#[test]
fn sigfpe_from_an_integer_division_by_zero() {
    assert_fault("sigfpe", libc::SIGFPE, "SIGFPE");
}

fn assert_stack_overflow(scenario: &str, thread: &str) {
    // Without lastwords std prints its message and aborts (checked by `run`
    // against the baseline); with it, the same, plus the record.
    let (out, records) = run(scenario, scenario, None);
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!("thread '{thread}'")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("has overflowed its stack"),
        "{}",
        out.stderr
    );
    assert_numbered(&records);
    let last = terminal(&records);
    assert_eq!(last["kind"], "fatal_signal");
    assert_eq!(last["signal"], "SIGSEGV");
    assert_eq!(last["signo"], libc::SIGSEGV);
    assert_eq!(last["thread"], thread);
    // The record says what the signal alone does not: the process dies of
    // SIGABRT because the thread ran off its stack.
    assert_eq!(last["stack_overflow"], true, "{last}");
    let message = "thread overflowed its stack (fatal signal SIGSEGV); \
                   the process dies of SIGABRT as std aborts";
    assert_eq!(last["message"], message);
    assert_eq!(crumb_names(&last["breadcrumbs"]), ["installed", "logged"]);
    assert!(
        out.stderr
            .contains(&format!("[lastwords] ERROR fatal_signal: {message}")),
        "{}",
        out.stderr
    );
}

#[test]
fn stack_overflow() {
    assert_stack_overflow("stack_overflow", "main");
}

#[test]
fn stack_overflow_in_a_spawned_thread() {
    // Runs on the alternate stack std gave the thread when it spawned it.
    assert_stack_overflow("stack_overflow_thread", "deep");
}

/// Runs `first` (killed by `signal` if given), then `ok` on the same file,
/// and returns the second run's `previous_run` and the first run's id.
fn previous_run_after(name: &str, first: &str, signal: Option<libc::c_int>) -> (Value, Value) {
    let dir = scratch(name);
    let log = dir.join("log.jsonl");
    let mut run = Run::new(first, &log);
    run.signal = signal;
    run.records = 5;
    run.go();
    let first_run = read_records(&log)[0]["run_id"].clone();
    Run::new("ok", &log).go();
    let records = read_records(&log);
    let start = records
        .iter()
        .rev()
        .find(|r| r["kind"] == "process_start")
        .expect("second process_start");
    assert_ne!(start["run_id"], first_run);
    (start["previous_run"].clone(), first_run)
}

#[test]
fn sigkill_is_reported_by_the_next_start() {
    let (previous, first_run) = previous_run_after("sigkill", "wait", Some(libc::SIGKILL));
    assert_eq!(previous["run_id"], first_run);
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    assert_eq!(
        crumb_names(&previous["last_breadcrumbs"]),
        ["installed", "logged"]
    );
    assert!(previous["pid"].as_u64().is_some_and(|p| p > 0));
}

#[test]
fn the_next_start_reports_each_ending() {
    let (p, _) = previous_run_after("prev_exit", "exit7", None);
    assert_eq!(
        (&p["ended"], &p["exit_code"]),
        (&"exit".into(), &7.into()),
        "{p}"
    );
    assert_eq!(crumb_names(&p["last_breadcrumbs"]), ["installed", "logged"]);
    let (p, _) = previous_run_after("prev_term", "wait", Some(libc::SIGTERM));
    assert_eq!(
        (&p["ended"], &p["signal"]),
        (&"signal".into(), &"SIGTERM".into()),
        "{p}"
    );
    let (p, _) = previous_run_after("prev_segv", "segv", None);
    assert_eq!(
        (&p["ended"], &p["signal"]),
        (&"fatal_signal".into(), &"SIGSEGV".into()),
        "{p}"
    );
    let (p, _) = previous_run_after("prev_panic", "panic_main", None);
    assert_eq!(
        (&p["ended"], &p["exit_code"]),
        (&"panic".into(), &101.into()),
        "{p}"
    );
    assert_eq!(p["panic"]["message"], "boom in main");
}

#[test]
fn the_first_start_has_no_previous_run() {
    let (_, records) = run("first_start", "ok", None);
    assert_eq!(records[0]["kind"], "process_start");
    assert_eq!(records[0]["previous_run"], Value::Null);
}

// Writes that fail (a file-size limit standing in for a full disk, now that
// only regular files are accepted as the log): see tests/io.rs,
// a_file_size_limit_mid_record_never_mixes_two_records_in_a_line.

#[test]
fn install_on_an_unwritable_path_is_an_error() {
    let err = lastwords::init()
        .path("/proc/nonexistent/x.jsonl")
        .install()
        .expect_err("/proc/nonexistent is not writable");
    let text = err.to_string();
    assert!(text.contains("/proc/nonexistent/x.jsonl"), "{text}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the OS error is kept"
    );
}

#[test]
fn install_hooks_without_a_file_is_an_error() {
    let err = lastwords::install_hooks().expect_err("no file is open in the test process");
    assert!(
        err.to_string().contains("no lastwords file is open"),
        "{err}"
    );
}

#[test]
fn eight_threads_of_50_000_records_never_interleave() {
    let dir = scratch("threads");
    let log = dir.join("log.jsonl");
    let out = Run::new("threads", &log).go();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let records = read_records(&log);
    let bytes = std::fs::read(&log).unwrap();
    assert_eq!(bytes.last(), Some(&b'\n'));
    check_seq(&records);
    let mut next = [0u64; 8];
    for r in records.iter().filter(|r| r["message"] == "threaded record") {
        let t = r["t"].as_u64().unwrap() as usize;
        assert_eq!(r["i"], next[t], "thread {t} lost or reordered a record");
        assert_eq!(r["text"], "line \"quoted\"\nand broken");
        next[t] += 1;
    }
    assert_eq!(next, [50_000; 8]);
}
