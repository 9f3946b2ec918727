//! Calls in flight at death and exit counts, tested with a real SIGKILL.
//!
//! 1. runs `examples/in_flight_child.rs block 3 2` with `LASTWORDS_PATH` in
//!    a fresh directory and `.stuck_after(1 s)`: 5 calls of `checked` (3
//!    leave through `?`, 2 through the tail), then 3 threads and 2 tokio
//!    tasks whose `#[exit_path]` calls block on a full channel; waits for
//!    its `blocked <unix ms>` line;
//! 2. waits until the log has a `stuck` record for each blocked function
//!    (count and age), then kills the child with SIGKILL;
//! 3. runs the child again with `start` on the same log and checks
//!    `previous_run`: `no_final_record`, `in_flight` lists both functions
//!    with their counts and an age that matches `last_alive` minus the
//!    time the calls blocked, and `exit_counts` has exactly the calls made.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "support/child.rs"]
mod child;

/// The child of these tests.
fn child_exe() -> PathBuf {
    child::example("in_flight_child")
}

const TIMEOUT: Duration = Duration::from_secs(60);

fn records(log: &Path) -> Vec<Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.ends_with('}'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn unix_ms(timestamp: &str) -> i64 {
    // 2026-12-01T15:54:06.045575Z
    let t = chrono_like(timestamp);
    t / 1000
}

/// RFC 3339 UTC with 6 fraction digits to Unix µs (days from civil).
fn chrono_like(s: &str) -> i64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let (y, m, d) = (n(0, 4), n(5, 7), n(8, 10));
    let (hh, mm, ss, us) = (n(11, 13), n(14, 16), n(17, 19), n(20, 26));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + us
}

#[test]
fn blocked_calls_are_reported_stuck_and_in_flight_after_sigkill() {
    let dir = child::scratch("in-flight-tests", "sigkill");
    let log = dir.join("child.jsonl");
    let exe = child_exe();
    let mut child = Command::new(&exe)
        .args(["block", "3", "2"])
        .env("LASTWORDS_PATH", &log)
        .env("LASTWORDS_STUCK_MS", "1000")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut line = String::new();
    // Kept open until the child is killed: it prints more lines.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    stdout.read_line(&mut line).unwrap();
    let blocked_ms: i64 = line
        .trim()
        .strip_prefix("blocked ")
        .unwrap_or_else(|| panic!("no `blocked` line: {line:?}"))
        .parse()
        .unwrap();
    // The heartbeat reports both functions stuck after about a second.
    let deadline = Instant::now() + TIMEOUT;
    let stuck = loop {
        let stuck: Vec<Value> = records(&log)
            .into_iter()
            .filter(|r| r["kind"] == "stuck")
            .collect();
        if stuck.len() >= 2 {
            break stuck;
        }
        assert!(Instant::now() < deadline, "no stuck records");
        std::thread::sleep(Duration::from_millis(50));
    };
    for (name, count) in [
        ("in_flight_child::relocate", 3),
        ("in_flight_child::relocate_async", 2),
    ] {
        let r = stuck
            .iter()
            .find(|r| r["fn"] == name)
            .unwrap_or_else(|| panic!("no stuck record for {name}: {stuck:?}"));
        assert_eq!(r["level"], "WARN");
        assert_eq!(r["state"], "stuck");
        assert_eq!(r["in_flight"], count, "{r}");
        assert!(r["oldest_age_ms"].as_u64().unwrap() >= 1000, "{r}");
        let msg = r["message"].as_str().unwrap();
        assert!(
            msg.starts_with(&format!("{name}: {count} calls in flight, oldest ")),
            "{msg}"
        );
    }
    // Let the calls age a little more, then kill.
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    drop(stdout);
    assert_eq!(status.signal(), Some(libc_sigkill()));

    let out = Command::new(&exe)
        .arg("start")
        .env("LASTWORDS_PATH", &log)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    let recs = records(&log);
    let start = recs
        .iter()
        .rev()
        .find(|r| r["kind"] == "process_start")
        .unwrap();
    let prev = &start["previous_run"];
    assert_eq!(prev["ended"], "no_final_record", "{prev}");
    let last_alive_ms = unix_ms(prev["last_alive"].as_str().unwrap());
    let truth = last_alive_ms - blocked_ms;
    let in_flight = prev["in_flight"].as_array().expect("in_flight");
    for (name, count) in [
        ("in_flight_child::relocate", 3),
        ("in_flight_child::relocate_async", 2),
    ] {
        let e = in_flight
            .iter()
            .find(|e| e["fn"] == name)
            .unwrap_or_else(|| panic!("{name} not in flight: {prev}"));
        assert_eq!(e["count"], count, "{e}");
        let age = e["oldest_age_ms"].as_i64().unwrap();
        // The age is never below the truth and at most one heartbeat
        // epoch (500 ms) above it; margins for a loaded machine.
        assert!(
            age >= truth - 100 && age <= truth + 3000,
            "{name}: age {age} ms, truth {truth} ms"
        );
        assert!(truth >= 2000, "the calls blocked for {truth} ms");
    }
    let counts: Vec<(String, String, u64)> = prev["exit_counts"]
        .as_array()
        .expect("exit_counts")
        .iter()
        .map(|e| {
            (
                e["fn"].as_str().unwrap().to_owned(),
                e["site"].as_str().unwrap().to_owned(),
                e["n"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        counts,
        [
            ("in_flight_child::checked".into(), "?".into(), 3),
            ("in_flight_child::checked".into(), "tail".into(), 2),
        ],
        "{prev}"
    );
}

fn libc_sigkill() -> i32 {
    9
}

/// A termination signal's record carries the calls in flight and the exit
/// counts itself (written by the signal handler), and the process still
/// dies of the signal.
#[test]
fn a_sigterm_record_lists_the_calls_in_flight() {
    let dir = child::scratch("in-flight-tests", "sigterm");
    let log = dir.join("child.jsonl");
    let mut child = Command::new(child_exe())
        .args(["block", "3", "2"])
        .env("LASTWORDS_PATH", &log)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    // Kept open until the child is gone: it prints more lines.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("blocked "), "{line:?}");
    // SAFETY: kill(2) on the child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    let status = child.wait().unwrap();
    drop(stdout);
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    let recs = records(&log);
    let signal = recs
        .iter()
        .find(|r| r["kind"] == "signal")
        .unwrap_or_else(|| panic!("no signal record: {recs:?}"));
    let in_flight = signal["in_flight"].as_array().expect("in_flight");
    for (name, count) in [
        ("in_flight_child::relocate", 3),
        ("in_flight_child::relocate_async", 2),
    ] {
        let e = in_flight
            .iter()
            .find(|e| e["fn"] == name)
            .unwrap_or_else(|| panic!("{name} not in flight: {signal}"));
        assert_eq!(e["count"], count, "{e}");
    }
    assert_eq!(
        signal["exit_counts"].as_array().map(Vec::len),
        Some(2),
        "{signal}"
    );
}

/// A function reported stuck gets one `recovered` record once its calls
/// in flight are done, after its `stuck` one, and no more after that.
#[test]
fn stuck_calls_that_return_are_reported_recovered() {
    use std::io::Write;
    let dir = child::scratch("in-flight-tests", "recovered");
    let log = dir.join("child.jsonl");
    let mut child = Command::new(child_exe())
        .args(["block", "2", "1"])
        .env("LASTWORDS_PATH", &log)
        .env("LASTWORDS_STUCK_MS", "1000")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("blocked "), "{line:?}");
    let stuck_state = |state: &str| -> Vec<Value> {
        records(&log)
            .into_iter()
            .filter(|r| r["kind"] == "stuck" && r["state"] == state)
            .collect()
    };
    let deadline = Instant::now() + TIMEOUT;
    while stuck_state("stuck").len() < 2 {
        assert!(Instant::now() < deadline, "no stuck records");
        std::thread::sleep(Duration::from_millis(50));
    }
    writeln!(stdin, "drain").unwrap();
    line.clear();
    while line.trim() != "drained" {
        line.clear();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "child gone");
    }
    // The next heartbeats (every 500 ms) see the functions idle.
    while stuck_state("recovered").len() < 2 {
        assert!(Instant::now() < deadline, "no recovered records");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Two more heartbeats: still exactly one of each per function.
    std::thread::sleep(Duration::from_millis(1200));
    child.kill().unwrap();
    child.wait().unwrap();
    let recs = records(&log);
    for name in [
        "in_flight_child::relocate",
        "in_flight_child::relocate_async",
    ] {
        let of: Vec<&Value> = recs
            .iter()
            .filter(|r| r["kind"] == "stuck" && r["fn"] == name)
            .collect();
        assert_eq!(of.len(), 2, "{name}: {of:?}");
        let (stuck, recovered) = (of[0], of[1]);
        assert_eq!(stuck["state"], "stuck", "{stuck}");
        assert_eq!(recovered["state"], "recovered", "{recovered}");
        assert_eq!(recovered["level"], "WARN", "{recovered}");
        assert_eq!(recovered["in_flight"], 0, "{recovered}");
        assert!(
            recovered["seq"].as_u64() > stuck["seq"].as_u64(),
            "{stuck} then {recovered}"
        );
        assert_eq!(
            recovered["message"],
            format!("{name}: recovered, 0 calls in flight"),
            "{recovered}"
        );
    }
}
