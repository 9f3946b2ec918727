//! Kubernetes' termination message, for each way the process can end.
//!
//! Each test:
//!
//! 1. runs `examples/crash_child.rs` with a scenario, `LASTWORDS_PATH` and
//!    `CRASH_TERMINATION_LOG` pointing into a fresh directory (the child
//!    then takes one `#[exit_path(unexpected)]` exit right after install);
//! 2. for a signal, waits for the child's `ready` line and sends it;
//! 3. checks that the parent sees the same status or death signal as when
//!    the child runs without lastwords (`CRASH_NO_LASTWORDS=1`);
//! 4. reads the termination-log file: at most 4096 bytes of UTF-8 saying
//!    how the process ended, where, the error or message, the last
//!    breadcrumbs and the run's `run_id` (the one in the JSONL).
//!
//! Nothing here forks the test harness: children are separate executables.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

#[path = "support/child.rs"]
mod child;

/// The child of these tests.
fn child_exe() -> PathBuf {
    child::example("crash_child")
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    child::scratch("termination-log-tests", name)
}

/// How long a child may take before the test gives up on it.
const TIMEOUT: Duration = Duration::from_secs(60);

/// What Kubernetes keeps of the file.
const MAX_BYTES: usize = 4096;

/// Runs the child once; with `termination_log`, lastwords is installed and
/// writes its termination message there; without, the child runs without
/// lastwords. Returns its status and stderr.
fn go(
    scenario: &str,
    log: &Path,
    termination_log: Option<&Path>,
    signal: Option<libc::c_int>,
) -> (ExitStatus, String) {
    let mut cmd = Command::new(child_exe());
    cmd.arg(scenario)
        .env("LASTWORDS_PATH", log)
        .env("CRASH_RECORDS", "20")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    match termination_log {
        Some(path) => cmd.env("CRASH_TERMINATION_LOG", path),
        None => cmd.env("CRASH_NO_LASTWORDS", "1"),
    };
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            // Default dispositions and an empty mask, whatever the test
            // runner was started with.
            for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGQUIT] {
                libc::signal(sig, libc::SIG_DFL);
            }
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("run crash_child");
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        // Ignored: a child that dies leaves what it wrote; that's all.
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    if let Some(sig) = signal {
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read stdout");
        assert_eq!(line, "ready\n", "child did not get ready: {scenario}");
        // SAFETY: plain kill(2) to our own child.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
    }
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        // Ignored: as for stderr.
        let _ = stdout.read_to_string(&mut s);
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
    out_reader.join().expect("stdout reader");
    (status, err_reader.join().expect("stderr reader"))
}

/// Runs `scenario` with lastwords and its termination log, then without
/// lastwords; checks both end alike. Returns the status, the message and
/// the run's `run_id` from the JSONL.
fn run(name: &str, scenario: &str, signal: Option<libc::c_int>) -> (ExitStatus, String, String) {
    let dir = scratch(name);
    let log = dir.join("log.jsonl");
    let message = dir.join("termination-log");
    // Stale content from "an earlier run": install must empty it.
    std::fs::write(&message, "stale message from an earlier run\n".repeat(300))
        .expect("write stale message");
    let (with, stderr) = go(scenario, &log, Some(&message), signal);
    let (without, _) = go(scenario, &dir.join("baseline.jsonl"), None, signal);
    assert_eq!(
        (with.code(), with.signal()),
        (without.code(), without.signal()),
        "{scenario}: the ending differs with lastwords ({with}) and without ({without}): {stderr}"
    );
    let bytes = std::fs::read(&message).expect("read the termination log");
    assert!(
        bytes.len() <= MAX_BYTES,
        "{scenario}: {} bytes, more than Kubernetes keeps",
        bytes.len()
    );
    let text = String::from_utf8(bytes).expect("the message is UTF-8");
    assert!(!text.contains("stale message"), "{scenario}: {text}");
    (with, text, run_id(&log))
}

/// The `run_id` of the run in `log` (its first record's).
fn run_id(log: &Path) -> String {
    let text = std::fs::read_to_string(log).expect("read the JSONL");
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().expect("a record")).expect("a JSON line");
    first["run_id"].as_str().expect("run_id").to_owned()
}

/// How it ended is the first line; then come the unexpected exit the child
/// took (site and error), its last breadcrumbs and the run_id.
fn assert_message(text: &str, first_line: &str, run_id: &str) {
    assert_eq!(text.lines().next(), Some(first_line), "{text}");
    for needle in [
        "last unexpected exit: crash_child::watch_upstream left via its tail at \
         examples/crash_child.rs:",
        ": err: upstream closed the stream\n",
        "last breadcrumbs (oldest first):\n  upstream watcher ended (examples/crash_child.rs:",
        "\n  installed (examples/crash_child.rs:",
        "\n  logged (examples/crash_child.rs:",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
    assert!(text.ends_with(&format!("\nrun_id {run_id}\n")), "{text}");
}

#[test]
fn non_zero_exit() {
    let (status, text, run_id) = run("exitcode3", "exitcode3", None);
    assert_eq!(status.code(), Some(3));
    assert_message(&text, "exited with code 3", &run_id);
}

#[test]
fn lastwords_exit_names_its_caller() {
    let (status, text, run_id) = run("lastwords_exit", "lastwords_exit", None);
    assert_eq!(status.code(), Some(5));
    let first = text.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("exited with code 5 at examples/crash_child.rs:"),
        "{text}"
    );
    assert_message(&text, first, &run_id);
}

#[test]
fn clean_exit_leaves_it_empty() {
    let (status, text, _) = run("ok", "ok", None);
    assert_eq!(status.code(), Some(0));
    assert_eq!(text, "");
}

#[test]
fn a_thread_panic_then_a_clean_exit_leaves_it_empty() {
    // The panic did not end the process: a "Completed" container must not
    // show it as its termination message.
    let (status, text, _) = run("panic_thread", "panic_thread", None);
    assert_eq!(status.code(), Some(0));
    assert_eq!(text, "");
}

#[test]
fn panic_in_main() {
    let (status, text, run_id) = run("panic_main", "panic_main", None);
    assert_eq!(status.code(), Some(101));
    assert_message(&text, "exited with code 101", &run_id);
    assert!(
        text.contains("\nafter: thread 'main' panicked at examples/crash_child.rs:"),
        "{text}"
    );
    assert!(text.contains(":\nboom in main\n"), "{text}");
}

#[test]
fn sigterm() {
    let (status, text, run_id) = run("sigterm", "wait", Some(libc::SIGTERM));
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_message(&text, "killed by SIGTERM", &run_id);
}

#[test]
fn sigsegv() {
    let (status, text, run_id) = run("segv", "segv", None);
    assert_eq!(status.signal(), Some(libc::SIGSEGV));
    assert_message(&text, "fatal signal SIGSEGV in thread 'main'", &run_id);
}

#[test]
fn abort() {
    let (status, text, run_id) = run("abort", "abort", None);
    assert_eq!(status.signal(), Some(libc::SIGABRT));
    assert_message(&text, "fatal signal SIGABRT in thread 'main'", &run_id);
}

#[test]
fn double_panic_aborts_with_the_panic_named() {
    let (status, text, run_id) = run("double_panic", "double_panic", None);
    assert_eq!(status.signal(), Some(libc::SIGABRT));
    assert_message(&text, "fatal signal SIGABRT in thread 'main'", &run_id);
    assert!(
        text.contains("\nafter: thread 'main' panicked at "),
        "{text}"
    );
}

#[test]
fn an_unwritable_path_fails_the_install() {
    let dir = scratch("unwritable");
    let missing = dir.join("no-such-dir/termination-log");
    let (status, stderr) = go("ok", &dir.join("log.jsonl"), Some(&missing), None);
    // crash_child `expect`s the install: the error is its panic message.
    assert_eq!(status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("cannot open the termination log") && stderr.contains("no-such-dir"),
        "{stderr}"
    );
}

#[test]
fn none_turns_it_off() {
    // `off` makes the child call `.termination_log(None)`: it runs as
    // usual, and no file named "off" appears where it runs.
    let dir = scratch("off");
    let (status, stderr) = go(
        "exitcode3",
        &dir.join("log.jsonl"),
        Some(Path::new("off")),
        None,
    );
    assert_eq!(status.code(), Some(3), "{stderr}");
    assert!(!Path::new(env!("CARGO_MANIFEST_DIR")).join("off").exists());
}

#[test]
fn stack_overflow_in_a_thread() {
    // Written from the handler on the thread's small alternate stack.
    let (status, text, run_id) = run("stack_overflow_thread", "stack_overflow_thread", None);
    assert_eq!(status.signal(), Some(libc::SIGABRT));
    assert_message(
        &text,
        "thread 'deep' overflowed its stack (fatal signal SIGSEGV)",
        &run_id,
    );
}

/// Without `.termination_log(..)`, the message goes to Kubernetes' default
/// path, `/dev/termination-log`, when that file exists. Run for real: the
/// child runs in a mount namespace (`unshare --mount`, private propagation)
/// whose `/dev` is a fresh tmpfs holding only that file, so nothing on the
/// machine is touched.
#[test]
fn the_default_path_is_kubernetes_own() {
    let dir = scratch("default-path");
    let log = dir.join("log.jsonl");
    let copy = dir.join("termination-log");
    // `$0` is the child, `$1` where to copy the message to.
    let script = r#"mount -t tmpfs lastwords-dev /dev || exit 90
: > /dev/termination-log || exit 91
"$0" exitcode3
status=$?
cat /dev/termination-log > "$1" || exit 92
exit $status"#;
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .arg(child_exe())
        .arg(&copy)
        .env("LASTWORDS_PATH", &log)
        .env("CRASH_RECORDS", "20")
        .env_remove("CRASH_TERMINATION_LOG")
        .env_remove("CRASH_NO_LASTWORDS")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("this test needs `unshare --mount` (util-linux) and root: cannot run it: {e}")
        });
    assert!(
        !matches!(out.status.code(), Some(90..=92)) && !out.stderr.starts_with(b"unshare:"),
        "this test needs `unshare --mount` and `mount -t tmpfs` (util-linux, root): {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&copy).expect("read the copied message");
    // The child takes its unexpected exit only when given a path: here the
    // message has how it ended, the breadcrumbs and the run_id.
    assert_eq!(text.lines().next(), Some("exited with code 3"), "{text}");
    assert!(
        text.contains("last breadcrumbs (oldest first):\n  installed (examples/crash_child.rs:"),
        "{text}"
    );
    assert!(
        text.ends_with(&format!("\nrun_id {}\n", run_id(&log))),
        "{text}"
    );
}
