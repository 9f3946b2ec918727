//! Signals: the application's own handlers keep their semantics, PID 1
//! ignores what the kernel ignores for it, every terminating signal kills
//! the same way, and two deaths at once give one ending.
//!
//! Each test:
//!
//! 1. runs `examples/signal_child.rs` (built here if needed) with a
//!    scenario, once with lastwords and once without
//!    (`CRASH_NO_LASTWORDS=1`);
//! 2. waits for the child's `ready` line, sends signals with `kill(2)`,
//!    and reads what the child prints;
//! 3. compares what the parent sees both times: exit status or death
//!    signal (and the core flag), stdout, and the time from the signal to
//!    the end (with a generous margin: the machine is shared);
//! 4. parses every line of the JSONL and checks `seq` and the records of
//!    the signals.
//!
//! Nothing here forks the test harness: children are separate executables.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use child::read_records;
use serde_json::Value;

#[path = "support/child.rs"]
mod child;

/// The child of these tests.
fn child_exe() -> PathBuf {
    child::example("signal_child")
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    child::scratch("signal-tests", name)
}

/// How long a child may take before the test gives up on it.
const TIMEOUT: Duration = Duration::from_secs(30);

/// A running child.
struct Child {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    stdout: String,
    stderr: std::thread::JoinHandle<String>,
    pid1: bool,
    signalled: Option<Instant>,
}

/// How a child ended.
struct Ending {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    /// From the first signal sent to the end.
    to_die: Duration,
}

impl Ending {
    /// What the parent sees: exit code, death signal, core flag.
    fn seen(&self) -> (Option<i32>, Option<i32>, bool) {
        (
            self.status.code(),
            self.status.signal(),
            self.status.core_dumped(),
        )
    }
}

fn spawn(args: &[&str], log: &Path, lastwords: bool, pid1: bool) -> Child {
    let mut cmd = if pid1 {
        let mut cmd = Command::new("unshare");
        cmd.args(["--pid", "--fork", "--mount-proc"])
            .arg(child_exe());
        cmd
    } else {
        Command::new(child_exe())
    };
    cmd.args(args)
        .env("LASTWORDS_PATH", log)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !lastwords {
        cmd.env("CRASH_NO_LASTWORDS", "1");
    }
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // The same, default, starting point whatever the test runner
            // inherited; no core files.
            for sig in 1..32 {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn the child");
    let mut err = child.stderr.take().expect("stderr");
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        // Ignored: a child that dies leaves what it wrote; that's all.
        let _ = err.read_to_string(&mut s);
        s
    });
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    Child {
        child,
        lines,
        stdout: String::new(),
        stderr,
        pid1,
        signalled: None,
    }
}

impl Child {
    /// Waits for the next stdout line and checks it.
    fn expect(&mut self, want: &str) {
        let line = self
            .lines
            .recv_timeout(TIMEOUT)
            .unwrap_or_else(|e| panic!("no {want:?} line from the child: {e}"));
        self.stdout.push_str(&line);
        self.stdout.push('\n');
        assert_eq!(line, want, "stdout so far: {}", self.stdout);
    }

    /// The pid to signal: the child, or under `unshare` its only child.
    fn pid(&self) -> libc::pid_t {
        let id = self.child.id();
        if !self.pid1 {
            return id as libc::pid_t;
        }
        let path = format!("/proc/{id}/task/{id}/children");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{path}: {text:?}"))
    }

    fn kill(&mut self, signo: libc::c_int) {
        self.signalled.get_or_insert_with(Instant::now);
        // SAFETY: plain kill(2) to our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), signo) }, 0);
    }

    /// Waits until the child's main thread is blocked in system call `nr`.
    fn wait_in_syscall(&self, nr: libc::c_long) {
        let path = format!("/proc/{}/syscall", self.pid());
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.split_whitespace().next() == Some(&nr.to_string()) {
                return;
            }
            assert!(start.elapsed() < TIMEOUT, "{path}: {text:?}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn send_line(&mut self, line: &str) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(line.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    fn wait(mut self) -> Ending {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            if start.elapsed() > TIMEOUT {
                // Ignored: the child may have exited meanwhile.
                let _ = self.child.kill();
                panic!("the child hung; stdout: {}", self.stdout);
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let to_die = self.signalled.map_or(Duration::ZERO, |t| t.elapsed());
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push_str(&line);
            self.stdout.push('\n');
        }
        Ending {
            status,
            stdout: self.stdout,
            stderr: self.stderr.join().expect("stderr reader"),
            to_die,
        }
    }
}

/// Runs `script` on the child with lastwords and without, checks that the
/// parent sees the same both times, and returns the run with lastwords
/// and its records.
fn both(
    name: &str,
    args: &[&str],
    pid1: bool,
    script: impl Fn(&mut Child),
) -> (Ending, Vec<Value>) {
    let dir = scratch(name);
    let log = dir.join("log.jsonl");
    let baseline_log = dir.join("baseline.jsonl");
    let mut with = spawn(args, &log, true, pid1);
    script(&mut with);
    let with = with.wait();
    let mut without = spawn(args, &baseline_log, false, pid1);
    script(&mut without);
    let without = without.wait();
    let what = format!("{args:?}{}", if pid1 { " as PID 1" } else { "" });
    assert_eq!(
        with.seen(),
        without.seen(),
        "{what}: with lastwords {} ({}), without {} ({})",
        with.status,
        with.stderr,
        without.status,
        without.stderr
    );
    assert_eq!(with.stdout, without.stdout, "{what}: stdout differs");
    // Generous: a dying process waits at most tens of milliseconds for
    // records still being written; the machine is loaded.
    assert!(
        with.to_die <= without.to_die + Duration::from_secs(3),
        "{what}: {:?} to die with lastwords, {:?} without",
        with.to_die,
        without.to_die
    );
    assert!(!baseline_log.exists(), "the baseline must not write a log");
    let records = read_records(&log);
    (with, records)
}

/// The records sorted by `seq`, checking that `seq` runs 1..=N.
fn in_order(records: &[Value]) -> Vec<&Value> {
    let mut run: Vec<&Value> = records.iter().collect();
    run.sort_by_key(|r| r["seq"].as_u64().expect("seq"));
    let seqs: Vec<u64> = run.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=run.len() as u64).collect::<Vec<_>>(), "seq gap");
    run
}

/// The records up to and including the one with `seq == last`, checking
/// that none is missing below it (records after it may be cut off by the
/// end of the process).
fn up_to(records: &[Value], last: u64) -> Vec<&Value> {
    let mut seqs: Vec<u64> = records.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.sort_unstable();
    let below: Vec<u64> = seqs.iter().copied().filter(|&s| s <= last).collect();
    assert_eq!(below, (1..=last).collect::<Vec<_>>(), "gap below {last}");
    let mut run: Vec<&Value> = records
        .iter()
        .filter(|r| r["seq"].as_u64().unwrap() <= last)
        .collect();
    run.sort_by_key(|r| r["seq"].as_u64().unwrap());
    run
}

fn of_kind<'a>(records: &'a [Value], kind: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["kind"] == kind).collect()
}

fn is_death(r: &Value) -> bool {
    ["panic", "signal", "fatal_signal", "process_exit"].contains(&r["kind"].as_str().unwrap_or(""))
}

const ORDERS: [&str; 3] = ["before", "after", "after_chain"];

/// The `signal` records the handler scenarios expect: ours runs when it
/// was installed first, or when the application's handler chains to it.
fn assert_handled_records(records: &[Value], order: &str, signame: &str, want: usize) {
    let signals = of_kind(records, "signal");
    let want = if order == "after" { 0 } else { want };
    assert_eq!(signals.len(), want, "{order}: {signals:?}");
    for s in signals {
        assert_eq!(s["signal"], signame);
        assert!(s.get("ignored").is_none(), "{s}");
    }
}

#[test]
fn a_handler_without_sa_restart_interrupts_a_blocking_read() {
    for order in ORDERS {
        let (out, records) = both(&format!("eintr_{order}"), &["eintr", order], false, |c| {
            c.expect("ready");
            c.wait_in_syscall(libc::SYS_read);
            c.kill(libc::SIGTERM);
            c.expect("handled");
            c.expect("eintr");
        });
        assert_eq!(out.status.code(), Some(0), "{order}: {}", out.stderr);
        let run = in_order(&records);
        assert_eq!(run.last().unwrap()["kind"], "process_exit");
        assert_handled_records(&records, order, "SIGTERM", 1);
    }
}

#[test]
fn a_resethand_handler_lets_the_second_sigint_kill() {
    for order in ORDERS {
        let (out, records) = both(
            &format!("reset_{order}"),
            &["resethand", order],
            false,
            |c| {
                c.expect("ready");
                c.kill(libc::SIGINT);
                c.expect("handled");
                c.kill(libc::SIGINT);
            },
        );
        assert_eq!(out.status.signal(), Some(libc::SIGINT), "{order}");
        let run = in_order(&records);
        // Installed first, lastwords records both: the first handled by
        // the application, the second the death (its handler put back
        // after the kernel's reset).
        assert_handled_records(
            &records,
            order,
            "SIGINT",
            if order == "before" { 2 } else { 1 },
        );
        if order == "before" {
            assert_eq!(run.last().unwrap()["signal"], "SIGINT");
        }
    }
}

#[test]
fn a_handler_needing_32_kib_of_stack_runs_on_the_thread_stack() {
    for order in ORDERS {
        let (out, records) = both(&format!("big_{order}"), &["bigstack", order], false, |c| {
            c.expect("ready");
            c.kill(libc::SIGUSR1);
            c.expect("handled");
            c.expect("done");
        });
        assert_eq!(out.status.code(), Some(0), "{order}: {}", out.stderr);
        let run = in_order(&records);
        assert_eq!(run.last().unwrap()["kind"], "process_exit");
        assert_handled_records(&records, order, "SIGUSR1", 1);
    }
}

/// (signal, name, record kind) for every signal whose default action
/// ends the process and that lastwords records.
const TERMINATING: [(libc::c_int, &str, &str); 14] = [
    (libc::SIGTERM, "SIGTERM", "signal"),
    (libc::SIGINT, "SIGINT", "signal"),
    (libc::SIGHUP, "SIGHUP", "signal"),
    (libc::SIGQUIT, "SIGQUIT", "signal"),
    (libc::SIGALRM, "SIGALRM", "signal"),
    (libc::SIGUSR1, "SIGUSR1", "signal"),
    (libc::SIGUSR2, "SIGUSR2", "signal"),
    (libc::SIGVTALRM, "SIGVTALRM", "signal"),
    (libc::SIGPROF, "SIGPROF", "signal"),
    (libc::SIGPIPE, "SIGPIPE", "signal"),
    (libc::SIGSYS, "SIGSYS", "fatal_signal"),
    (libc::SIGTRAP, "SIGTRAP", "fatal_signal"),
    (libc::SIGXCPU, "SIGXCPU", "fatal_signal"),
    (libc::SIGXFSZ, "SIGXFSZ", "fatal_signal"),
];

#[test]
fn every_terminating_signal_kills_as_without_lastwords() {
    for (signo, name, kind) in TERMINATING {
        let (out, records) = both(&format!("term_{name}"), &["wait"], false, |c| {
            c.expect("ready");
            c.kill(signo);
        });
        assert_eq!(out.status.signal(), Some(signo), "{name}: {}", out.stderr);
        let run = in_order(&records);
        let last = run.last().unwrap();
        assert_eq!(last["kind"], kind, "{name}: {last}");
        assert_eq!(last["signal"], name);
        assert_eq!(last["signo"], signo);
        assert_eq!(last["thread"], "main");
        let level = if kind == "signal" { "WARN" } else { "ERROR" };
        let mirror = format!("[lastwords] {level} {kind}: ");
        assert!(out.stderr.contains(&mirror), "{name}: {}", out.stderr);
    }
}

#[test]
fn sigxfsz_from_a_file_size_limit() {
    let (out, records) = both("xfsz", &["xfsz"], false, |_| {});
    assert_eq!(out.status.signal(), Some(libc::SIGXFSZ), "{}", out.stderr);
    let run = in_order(&records);
    let last = run.last().unwrap();
    assert_eq!(last["kind"], "fatal_signal", "{last}");
    assert_eq!(last["signal"], "SIGXFSZ");
}

#[test]
fn sigpipe_ignored_by_std_stays_ignored() {
    let (out, records) = both("epipe", &["epipe"], false, |c| c.expect("epipe"));
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let run = in_order(&records);
    assert!(run.iter().all(|r| r["kind"] != "signal"), "{run:?}");
    assert_eq!(run.last().unwrap()["kind"], "process_exit");
}

/// Checks that this machine can run a child as PID 1 of a new PID
/// namespace, failing with the reason if not: the PID 1 tests must never
/// pass without having run.
fn assert_unshare_works() {
    let out = Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .output()
        .unwrap_or_else(|e| panic!("the PID 1 tests need `unshare` (util-linux) and root: {e}"));
    assert!(
        out.status.success(),
        "the PID 1 tests need `unshare --pid --fork --mount-proc` (root): {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every signal sent from outside to PID 1 whose action is the default
/// (SIGKILL and SIGSTOP aside) is ignored by the kernel: with lastwords
/// too, the process goes on, and the records say `ignored`.
#[test]
fn pid_1_ignores_default_action_signals_from_outside() {
    assert_unshare_works();
    let mut sent: Vec<(libc::c_int, &str, &str)> = TERMINATING.to_vec();
    sent.extend([
        (libc::SIGABRT, "SIGABRT", "fatal_signal"),
        (libc::SIGILL, "SIGILL", "fatal_signal"),
        (libc::SIGFPE, "SIGFPE", "fatal_signal"),
    ]);
    let (out, records) = both("pid1_ignore", &["pid1_stdin"], true, |c| {
        c.expect("ready");
        for &(signo, _, _) in &sent {
            c.kill(signo);
            // One at a time, so that the records come in this order.
            std::thread::sleep(Duration::from_millis(50));
        }
        c.send_line("go\n");
        c.expect("alive");
    });
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr);
    let run = in_order(&records);
    let got: Vec<(&str, &str)> = run
        .iter()
        .filter(|r| r["kind"] == "signal" || r["kind"] == "fatal_signal")
        .map(|r| {
            assert_eq!(r["ignored"], true, "{r}");
            assert_eq!(r["pid"], 1);
            (r["kind"].as_str().unwrap(), r["signal"].as_str().unwrap())
        })
        .collect();
    let want: Vec<(&str, &str)> = sent.iter().map(|&(_, n, k)| (k, n)).collect();
    assert_eq!(got, want);
    assert!(out.stderr.contains("ignored, as the kernel does for PID 1"));
    let last = run.last().unwrap();
    assert_eq!(last["kind"], "process_exit");
    assert_eq!(last["exit_code"], 0);
}

#[test]
fn pid_1_still_dies_of_a_fault() {
    assert_unshare_works();
    let (out, records) = both("pid1_segv", &["segv"], true, |_| {});
    assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{}", out.stderr);
    let run = in_order(&records);
    let last = run.last().unwrap();
    assert_eq!(last["kind"], "fatal_signal");
    assert_eq!(last["signal"], "SIGSEGV");
    assert_eq!(last["pid"], 1);
    assert!(last.get("ignored").is_none(), "{last}");
}

#[test]
fn two_threads_crashing_at_once_give_one_ending() {
    for round in 0..5 {
        let (out, records) = both(&format!("two_segv_{round}"), &["two_segv"], false, |_| {});
        assert_eq!(out.status.signal(), Some(libc::SIGSEGV), "{}", out.stderr);
        let run = in_order(&records);
        let fatal = of_kind(&records, "fatal_signal");
        assert_eq!(fatal.len(), 1, "round {round}: {fatal:?}");
        assert_eq!(run.last().unwrap()["kind"], "fatal_signal");
        assert!(fatal[0]["thread"]
            .as_str()
            .is_some_and(|t| t.starts_with("crasher-")));
    }
}

#[test]
fn sigterm_while_exit_handlers_run() {
    for order in ["before", "after"] {
        let (out, records) = both(
            &format!("exit_term_{order}"),
            &["term_in_exit", order],
            false,
            |c| {
                c.expect("in atexit");
                c.kill(libc::SIGTERM);
            },
        );
        assert_eq!(
            out.status.signal(),
            Some(libc::SIGTERM),
            "{order}: {}",
            out.stderr
        );
        // The atexit handler sleeps 5 s: the signal ended the process.
        assert!(
            out.to_die < Duration::from_secs(4),
            "{order}: {:?}",
            out.to_die
        );
        let signals = of_kind(&records, "signal");
        assert_eq!(signals.len(), 1, "{order}: {signals:?}");
        let end = signals[0]["seq"].as_u64().unwrap();
        let run = up_to(&records, end);
        // No ending other than the signal after it.
        assert!(
            records
                .iter()
                .all(|r| r["seq"].as_u64().unwrap() <= end || !is_death(r)),
            "{order}"
        );
        let exits: Vec<&&Value> = run.iter().filter(|r| r["kind"] == "process_exit").collect();
        // lastwords' exit handler runs before an atexit handler registered
        // earlier, after one registered later (glibc runs them in reverse).
        assert_eq!(exits.len(), usize::from(order == "before"), "{order}");
        if let Some(exit) = exits.first() {
            assert_eq!(exit["exit_code"], 3);
        }
    }
}

#[test]
fn panics_while_sigterm_is_handled_give_one_ending() {
    for round in 0..3 {
        let (out, records) = both(
            &format!("panic_term_{round}"),
            &["panics_during_term"],
            false,
            |c| {
                c.expect("ready");
                c.kill(libc::SIGTERM);
            },
        );
        assert_eq!(out.status.signal(), Some(libc::SIGTERM), "{}", out.stderr);
        let signals = of_kind(&records, "signal");
        assert_eq!(signals.len(), 1, "{signals:?}");
        let end = signals[0]["seq"].as_u64().unwrap();
        up_to(&records, end);
        let later: Vec<&Value> = records
            .iter()
            .filter(|r| r["seq"].as_u64().unwrap() > end && is_death(r))
            .collect();
        assert!(
            later.is_empty(),
            "round {round}: death records after the signal: {later:?}"
        );
        assert!(
            of_kind(&records, "panic").len() > 1,
            "the workers barely panicked"
        );
    }
}
