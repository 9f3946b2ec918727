//! The edges of I/O, install and fork, each in a child process
//! (`examples/io_child.rs`), run with lastwords and, where the behaviour must
//! match, without it (`IO_NO_LASTWORDS=1`):
//!
//! 1. a stderr nobody reads (a FIFO or a socket held open, filled, never
//!    read): SIGTERM, SIGSEGV and `exit(0)` end at once, with the same
//!    status as without lastwords, and the log has every record;
//! 2. a hostile old log cannot put control characters or a forged line on
//!    stderr through the previous-run summary;
//! 3. a file-size limit hit in the middle of a record leaves no line that
//!    mixes two records;
//! 4. a failed `install()` writes nothing and can be retried;
//! 5. a FIFO, a directory or a device at the log path is an error naming
//!    the path, never a hang;
//! 6. a `fork()`ed child logs into a run of its own.
//!
//! Nothing here forks the test harness: children are separate executables.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/child.rs"]
mod child;

/// The child of these tests.
fn child_exe() -> PathBuf {
    child::example("io_child")
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    child::scratch("io-tests", name)
}

/// How long a child may take before the test gives up on it (a child that
/// hangs is what several of these tests look for).
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a death may take once it is due: generous for a loaded
/// machine, far below "forever".
const PROMPT: Duration = Duration::from_secs(5);

/// The child running `scenario`, logging to `log`; stdout piped, stdin and
/// stderr as given.
fn spawn(scenario: &str, log: &Path, lastwords: bool, stderr: Stdio) -> Child {
    let mut cmd = Command::new(child_exe());
    cmd.arg(scenario)
        .env("LASTWORDS_PATH", log)
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    if !lastwords {
        cmd.env("IO_NO_LASTWORDS", "1");
    }
    cmd.spawn().expect("run io_child")
}

/// Waits for `child` at most [`TIMEOUT`]; kills it and fails if it hangs.
fn wait(child: &mut Child, what: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if started.elapsed() > TIMEOUT {
            // Ignored: the child may have exited meanwhile.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the child hangs");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Runs `scenario` to its end with stderr piped; returns status, stdout and
/// stderr.
fn run(scenario: &str, log: &Path, lastwords: bool) -> (ExitStatus, String, String) {
    let mut child = spawn(scenario, log, lastwords, Stdio::piped());
    let mut stderr = child.stderr.take().expect("stderr");
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        // Ignored: whatever the child wrote is all there is.
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut stdout = child.stdout.take().expect("stdout");
    let out_reader = std::thread::spawn(move || {
        let mut s = String::new();
        // Ignored: as for stderr.
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let status = wait(&mut child, scenario);
    (
        status,
        out_reader.join().expect("stdout"),
        err_reader.join().expect("stderr"),
    )
}

fn ending(status: &ExitStatus) -> (Option<i32>, Option<i32>) {
    (status.code(), status.signal())
}

/// Every complete line of the file, parsed.
fn records(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("invalid line ({e}): {line}"))
        })
        .collect()
}

/// The records of run `run_id`, checking that their `seq` is 1..=N with no
/// gap and that each thread's records are in the file in its own order.
/// (Across threads the file order may differ from `seq`'s: a thread takes
/// its number just before its `write(2)`, and may be preempted between.)
fn run_of<'a>(records: &'a [Value], run_id: &str) -> Vec<&'a Value> {
    let run: Vec<&Value> = records.iter().filter(|r| r["run_id"] == run_id).collect();
    let seq = |r: &Value| r["seq"].as_u64().expect("seq");
    let mut seqs: Vec<u64> = run.iter().map(|r| seq(r)).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=run.len() as u64).collect::<Vec<_>>(),
        "run {run_id}: seq must be 1..=N, no gap, no repeat"
    );
    let mut last_of_thread = std::collections::HashMap::new();
    for r in &run {
        let thread = r["thread_id"].as_u64().expect("thread_id");
        if let Some(previous) = last_of_thread.insert(thread, seq(r)) {
            assert!(
                previous < seq(r),
                "run {run_id}: thread {thread}'s seq {} after {previous} in the file",
                seq(r)
            );
        }
    }
    run
}

// ---------------------------------------------------------------------------
// 1. A stderr nobody reads.

/// Where the child's stderr goes: a FIFO or a socket, held open (the
/// returned descriptor: the FIFO's read end, the socket's other end) and
/// never read, until the child is gone.
fn stalled_stderr(dir: &Path, socket: bool) -> (OwnedFd, Stdio) {
    if socket {
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().expect("socketpair");
        return (OwnedFd::from(ours), Stdio::from(OwnedFd::from(theirs)));
    }
    let fifo = dir.join("stderr.fifo");
    let c = std::ffi::CString::new(fifo.to_str().expect("utf-8 path")).unwrap();
    // SAFETY: `c` is a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    // The reader first (non-blocking, so that opening it does not wait for
    // a writer); then the writer's open does not wait either.
    let reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .expect("open the FIFO for reading");
    let writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("open the FIFO for writing");
    (OwnedFd::from(reader), Stdio::from(writer))
}

/// Runs `scenario` with a stalled stderr, with and without lastwords: both
/// end promptly once the death is due, the same way; returns the log's
/// records.
fn blocked(name: &str, scenario: &str, signal: Option<libc::c_int>, socket: bool) -> Vec<Value> {
    let dir = scratch(name);
    let mut endings = Vec::new();
    for lastwords in [true, false] {
        let log = dir.join(if lastwords {
            "log.jsonl"
        } else {
            "baseline.jsonl"
        });
        let (held, stderr) = stalled_stderr(&dir.join(format!("{lastwords}")).tap_dir(), socket);
        let mut child = spawn(scenario, &log, lastwords, stderr);
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            // Ignored: a child that dies early closes stdout; the empty
            // line then fails the check below.
            let _ = stdout.read_line(&mut line);
            // Ignored: the test may have given up waiting.
            let _ = tx.send(line);
        });
        // The child says when its stderr is full and its records are
        // logged; a child stuck on its stderr never does.
        let due = if let Some(sig) = signal {
            let Ok(line) = rx.recv_timeout(TIMEOUT) else {
                // Ignored: the child may have exited meanwhile.
                let _ = child.kill();
                let _ = child.wait();
                panic!("{scenario}: lastwords={lastwords}: the child hangs before it is ready");
            };
            assert_eq!(line, "ready\n", "{scenario}: lastwords={lastwords}");
            // SAFETY: kill(2) to our own child.
            assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, sig) }, 0);
            Instant::now()
        } else {
            Instant::now()
        };
        let status = wait(&mut child, scenario);
        let took = due.elapsed();
        assert!(
            took < PROMPT,
            "{scenario}: lastwords={lastwords}: took {took:?} to end with stderr blocked"
        );
        drop(held);
        endings.push(ending(&status));
        assert!(
            !log.exists() || lastwords,
            "the baseline must not write a log"
        );
    }
    assert_eq!(
        endings[0], endings[1],
        "{scenario}: the ending differs with lastwords and without"
    );
    records(&dir.join("log.jsonl"))
}

trait TapDir {
    fn tap_dir(self) -> Self;
}

impl TapDir for PathBuf {
    /// Creates the directory and hands it back.
    fn tap_dir(self) -> Self {
        std::fs::create_dir_all(&self).expect("create dir");
        self
    }
}

fn assert_errors_logged(records: &[Value]) {
    let errors: Vec<u64> = records
        .iter()
        .filter(|r| r["level"] == "ERROR" && r["kind"] == "event")
        .map(|r| r["n"].as_u64().expect("n"))
        .collect();
    assert_eq!(
        errors,
        (0..20).collect::<Vec<_>>(),
        "every mirrored record is in the log"
    );
}

#[test]
fn sigterm_with_stderr_blocked_dies_at_once() {
    let records = blocked("blocked-term", "blocked_term", Some(libc::SIGTERM), false);
    assert_errors_logged(&records);
    let last = records.last().expect("records");
    assert_eq!(last["kind"], "signal", "{last}");
    assert_eq!(last["signal"], "SIGTERM");
    let run_id = last["run_id"].as_str().unwrap();
    run_of(&records, run_id);
}

#[test]
fn sigterm_with_stderr_a_stalled_socket_dies_at_once() {
    let records = blocked(
        "blocked-term-socket",
        "blocked_term",
        Some(libc::SIGTERM),
        true,
    );
    assert_errors_logged(&records);
    assert_eq!(records.last().unwrap()["kind"], "signal");
}

#[test]
fn sigsegv_with_stderr_blocked_dies_at_once() {
    let records = blocked("blocked-segv", "blocked_segv", None, false);
    assert_errors_logged(&records);
    let last = records.last().expect("records");
    assert_eq!(last["kind"], "fatal_signal", "{last}");
    assert_eq!(last["signal"], "SIGSEGV");
}

#[test]
fn exit_with_stderr_blocked_ends_at_once_and_counts_the_skipped_lines() {
    let records = blocked("blocked-exit", "blocked_exit0", None, false);
    assert_errors_logged(&records);
    let last = records.last().expect("records");
    assert_eq!(last["kind"], "process_exit", "{last}");
    assert_eq!(last["exit_code"], 0);
    // process_start's line and the 20 errors' lines could not be written.
    assert!(
        last["mirror_dropped"].as_u64().expect("mirror_dropped") >= 20,
        "{last}"
    );
    run_of(&records, last["run_id"].as_str().unwrap());
}

// ---------------------------------------------------------------------------
// 2. A hostile old log.

#[test]
fn a_hostile_log_tail_cannot_forge_lines_or_send_escapes_to_stderr() {
    let dir = scratch("hostile");
    let log = dir.join("log.jsonl");
    let hostile = serde_json::json!({
        "timestamp": "2026-01-01T00:00:00.000000Z",
        "kind": "signal",
        "pid": 1,
        "run_id": "0000000000000000dead",
        "seq": 1,
        "signal": "SIGTERM)\n[lastwords] ERROR forged: all is well\r\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m",
    });
    std::fs::write(&log, format!("{hostile}\n")).unwrap();
    let (status, stdout, stderr) = run("ok", &log, true);
    assert_eq!(status.code(), Some(0), "{stderr}");
    // The mirror's non-blocking writes use a descriptor of their own.
    assert_eq!(
        stdout, "fd2_nonblocking=false\n",
        "stderr itself stays blocking"
    );
    for bad in ['\u{1b}', '\r', '\u{7}', '\u{9b}'] {
        assert!(!stderr.contains(bad), "{bad:?} reached stderr: {stderr:?}");
    }
    assert!(
        !stderr
            .lines()
            .any(|l| l.starts_with("[lastwords] ERROR forged")),
        "a forged line reached stderr: {stderr}"
    );
    // The summary names the signal only when it is a signal's name: this
    // one is left out (the mirror's escaping is tested on its own in
    // mirror.rs).
    assert!(
        stderr.contains("previous run ended: signal\n"),
        "the summary is there, without the forged name: {stderr}"
    );
    // The JSONL keeps the value as it was.
    let start = &records(&log)[1];
    assert_eq!(start["kind"], "process_start");
    assert_eq!(start["previous_run"]["signal"], hostile["signal"]);
}

// ---------------------------------------------------------------------------
// 3. A file-size limit in the middle of a record.

#[test]
fn a_file_size_limit_mid_record_never_mixes_two_records_in_a_line() {
    let dir = scratch("fsize");
    let log = dir.join("log.jsonl");
    let (with, stdout, stderr) = run("fsize", &log, true);
    let (without, _, _) = run("fsize", &dir.join("baseline.jsonl"), false);
    assert_eq!(ending(&with), ending(&without), "{stderr}");
    assert_eq!(with.code(), Some(0), "{stderr}");
    let dropped: u64 = stdout
        .trim()
        .strip_prefix("dropped_records=")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("stdout: {stdout}"));
    assert!(dropped > 0, "the limit dropped records");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.ends_with('\n'));
    let mut cut = 0;
    let mut parsed = Vec::new();
    for line in text.lines() {
        match serde_json::from_str::<Value>(line) {
            Ok(record) => parsed.push(record),
            Err(_) => {
                // A cut record: the beginning of one record, alone.
                cut += 1;
                assert!(line.starts_with("{\"timestamp\":"), "{line}");
                assert_eq!(line.matches("\"timestamp\"").count(), 1, "{line}");
            }
        }
    }
    assert_eq!(cut, 1, "the limit fell inside one record:\n{text}");
    let after = parsed
        .iter()
        .filter(|r| r["message"] == "after the limit")
        .count();
    assert_eq!(after, 10, "writing works again once the limit is lifted");
    let last = parsed.last().unwrap();
    assert_eq!(last["kind"], "process_exit");
    assert_eq!(last["dropped_records"], dropped);
    assert!(
        stderr.contains(&format!(
            "[lastwords] cannot write to {}: file too large (EFBIG)",
            log.display()
        )),
        "{stderr}"
    );
    let exit = format!("process exited with code 0; {dropped} records could not be written");
    assert!(stderr.contains(&exit), "{stderr}");
}

// ---------------------------------------------------------------------------
// 4. install() failing, then retried.

#[test]
fn install_over_an_existing_subscriber_writes_nothing_and_layer_then_works() {
    let dir = scratch("install-over");
    let log = dir.join("log.jsonl");
    let (status, stdout, stderr) = run("install_over_subscriber", &log, true);
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("install: lastwords: cannot set the global subscriber"),
        "{stdout}"
    );
    assert!(stdout.contains("log written: false"), "{stdout}");
    let records = records(&log);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["process_start", "event", "process_exit"],
        "{records:?}"
    );
    assert_eq!(records[1]["message"], "after the retry");
    assert_eq!(records[2]["exit_code"], 0);
    run_of(&records, records[0]["run_id"].as_str().unwrap());
}

#[test]
fn install_fails_on_a_bad_path_and_a_retry_installs_everything() {
    let dir = scratch("install-retry");
    let log = dir.join("log.jsonl");
    let (status, stdout, stderr) = run("install_retry", &log, true);
    assert_eq!(status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains("it is a directory"), "{stdout}");
    let records = records(&log);
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["process_start", "event", "process_exit"],
        "{records:?}"
    );
}

// ---------------------------------------------------------------------------
// 5. What is at the log path.

#[test]
fn a_fifo_a_directory_or_a_device_at_the_path_is_an_error_naming_it() {
    let dir = scratch("paths");
    let fifo = dir.join("fifo.jsonl");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: `c` is a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
    let subdir = dir.join("dir.jsonl").tap_dir();
    let link = dir.join("link-to-null.jsonl");
    std::os::unix::fs::symlink("/dev/null", &link).unwrap();
    for (path, what) in [
        (fifo.as_path(), "a FIFO"),
        (subdir.as_path(), "a directory"),
        (Path::new("/dev/null"), "a character device"),
        (link.as_path(), "a character device"),
    ] {
        let started = Instant::now();
        let (status, stdout, stderr) = run("install_only", path, true);
        assert!(started.elapsed() < TIMEOUT, "never blocks");
        assert_eq!(
            status.code(),
            Some(2),
            "{}: {stdout}{stderr}",
            path.display()
        );
        assert!(
            stdout.contains(&format!("cannot open {} for appending", path.display())),
            "{stdout}"
        );
        assert!(stdout.contains(what), "{what}: {stdout}");
    }
    // A link to a regular file is followed.
    let target = dir.join("real.jsonl");
    let link = dir.join("link.jsonl");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let (status, stdout, _) = run("install_only", &link, true);
    assert_eq!(status.code(), Some(0), "{stdout}");
    assert_eq!(records(&target)[0]["kind"], "process_start");
}

// ---------------------------------------------------------------------------
// 6. fork().

#[test]
fn a_forked_child_logs_into_a_run_of_its_own() {
    let dir = scratch("fork");
    let log = dir.join("log.jsonl");
    let (with, stdout, stderr) = run("fork", &log, true);
    let (without, base_stdout, _) = run("fork", &dir.join("baseline.jsonl"), false);
    assert_eq!(ending(&with), ending(&without), "{stderr}");
    assert_eq!(with.code(), Some(0), "{stdout}{stderr}");
    let child_pid: u64 = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("child="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("stdout: {stdout}"));
    assert!(stdout.contains("status=3"), "{stdout}");
    assert!(base_stdout.contains("status=3"), "{base_stdout}");

    let records = records(&log);
    let parent_run = records[0]["run_id"].as_str().unwrap().to_owned();
    let parent_pid = records[0]["pid"].as_u64().unwrap();
    let parent = run_of(&records, &parent_run);
    assert!(parent.iter().all(|r| r["pid"] == parent_pid));
    assert_eq!(parent[0]["kind"], "process_start");
    let last = parent.last().unwrap();
    assert_eq!(
        last["kind"], "process_exit",
        "the parent's run ends with its own exit"
    );
    assert_eq!(last["exit_code"], 0);
    assert!(parent.iter().all(|r| r["message"] != "in the child"));

    let mut runs: Vec<&str> = records
        .iter()
        .map(|r| r["run_id"].as_str().unwrap())
        .collect();
    runs.sort_unstable();
    runs.dedup();
    assert_eq!(
        runs.len(),
        3,
        "the parent's run and the forked children's, nothing for `pre_exec`"
    );
    let child: Vec<&Value> = records.iter().filter(|r| r["pid"] == child_pid).collect();
    let child_run = child[0]["run_id"].as_str().unwrap().to_owned();
    assert_ne!(child_run, parent_run);
    let child_records = run_of(&records, &child_run);
    assert_eq!(child_records.len(), child.len(), "one run per process");
    let kinds: Vec<&str> = child.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "process_start",
            "event",
            "event",
            "event",
            "event",
            "process_exit"
        ]
    );
    assert_eq!(child[0]["forked_from"]["pid"], parent_pid);
    assert_eq!(child[0]["forked_from"]["run_id"], parent_run.as_str());
    assert_eq!(child[5]["exit_code"], 3);
    for r in &child {
        assert_eq!(r["thread_id"], child_pid, "{r}");
    }

    // The second child's first record is a signal handler's: its own
    // process_start comes first, from the handler too.
    let child2_pid: u64 = stdout
        .split_whitespace()
        .find_map(|w| w.strip_prefix("child2="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("stdout: {stdout}"));
    assert!(stdout.contains("signal=15"), "{stdout}");
    assert!(base_stdout.contains("signal=15"), "{base_stdout}");
    let child2: Vec<&Value> = records.iter().filter(|r| r["pid"] == child2_pid).collect();
    let kinds: Vec<&str> = child2.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["process_start", "signal"], "{child2:?}");
    assert_eq!(child2[0]["forked_from"]["run_id"], parent_run.as_str());
    assert_eq!(child2[1]["signal"], "SIGTERM");
    run_of(&records, child2[0]["run_id"].as_str().unwrap());

    // The next start reports the run that wrote the last record: the
    // parent's, ended by its own exit.
    let (status, _, stderr) = run("ok", &log, true);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let records = self::records(&log);
    let start = records
        .iter()
        .rev()
        .find(|r| r["kind"] == "process_start")
        .unwrap();
    let previous = &start["previous_run"];
    assert_eq!(previous["run_id"], parent_run.as_str(), "{previous}");
    assert_eq!(previous["ended"], "exit", "{previous}");
    assert_eq!(previous["exit_code"], 0, "{previous}");
}
