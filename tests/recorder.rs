//! The flight recorder, tested with real deaths.
//!
//! Each test:
//!
//! 1. runs `examples/recorder_child.rs` with a scenario and
//!    `LASTWORDS_PATH` in a fresh directory (file filter `info`, recorder
//!    filter `debug`), waits for its `ready` line, then kills it with
//!    SIGKILL (or lets the OOM killer do it inside a memory cgroup);
//! 2. checks the death: killed by SIGKILL (status 137 in a shell);
//! 3. runs the child again with `start` on the same log, which reports on
//!    the dead run;
//! 4. parses every line of the JSONL and checks the recovered records (the
//!    last ones of the dead run, oldest first, `"recovered":true`, before
//!    the new `process_start`, nothing torn, nothing twice) and
//!    `previous_run` (`no_final_record`, `last_alive`, `cause`).

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

#[path = "support/child.rs"]
mod child;

/// The child of these tests.
fn child_exe() -> PathBuf {
    child::example("recorder_child")
}

/// A fresh, empty directory for one test's files.
fn scratch(name: &str) -> PathBuf {
    child::scratch("recorder-tests", name)
}

/// How long a child may take before the test gives up on it.
const TIMEOUT: Duration = Duration::from_secs(60);

fn command(scenario: &str, log: &Path) -> Command {
    let mut cmd = Command::new(child_exe());
    cmd.arg(scenario)
        .env("LASTWORDS_PATH", log)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    cmd
}

/// Reads the child's stdout until `ready`.
fn wait_ready(child: &mut Child) {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("read child stdout");
    assert_eq!(line, "ready\n", "the child did not get ready");
}

fn wait(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        if Instant::now() > deadline {
            // Ignored: it may have died in between; the panic says enough.
            let _ = child.kill();
            panic!("child did not end within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// SIGKILLs the child; returns when it was killed (Unix microseconds).
fn kill(child: &mut Child) -> i64 {
    let at = now_micros();
    // SAFETY: plain kill(2) of our own child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGKILL) }, 0);
    let status = wait(child);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    at
}

/// Runs `start` on the same log: the run that reports on the dead one.
fn start_again(log: &Path) {
    let status = command("start", log).status().expect("run child");
    assert!(status.success(), "{status:?}");
}

/// Every complete line of the log, parsed; a line that does not parse
/// fails the test (nothing may be torn).
fn records(log: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(log).expect("read log");
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The recovered records and the `process_start` after them; checks that
/// they sit together just before it, and that it is the last start.
fn recovered_then_start(all: &[Value]) -> (Vec<&Value>, &Value) {
    let start = all
        .iter()
        .rposition(|r| r["kind"] == "process_start")
        .expect("a process_start");
    let first = all
        .iter()
        .position(|r| r["recovered"] == true)
        .expect("recovered records");
    let recovered: Vec<&Value> = all[first..start].iter().collect();
    for r in &recovered {
        assert_eq!(r["recovered"], true, "not recovered between them: {r}");
    }
    assert!(all[start + 1..]
        .iter()
        .all(|r| r.get("recovered").is_none()));
    (recovered, &all[start])
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` → Unix microseconds.
fn parse_time(s: &str) -> i64 {
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("digits");
    let (y, m, d) = (n(0..4), n(5..7), n(8..10));
    // Days from civil (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + n(11..13) * 3600 + n(14..16) * 60 + n(17..19);
    secs * 1_000_000 + n(20..26)
}

/// Checks `last_alive` against when the run died: not after it, and at
/// most a few seconds before (one heartbeat period plus a loaded machine).
fn check_last_alive(previous: &Value, died_at: i64) {
    let alive = parse_time(previous["last_alive"].as_str().expect("last_alive"));
    assert!(
        alive <= died_at + 50_000,
        "last_alive after the death: {previous}"
    );
    assert!(
        died_at - alive < 3_000_000,
        "last_alive {} s before the death",
        (died_at - alive) as f64 / 1e6
    );
}

#[test]
fn sigkill_recovers_the_last_debug_records_before_the_next_start() {
    let dir = scratch("sigkill");
    let log = dir.join("app.jsonl");
    let mut child = command("debug", &log)
        .env("RECORDER_RECORDS", "20000")
        .spawn()
        .unwrap();
    wait_ready(&mut child);
    // Idle past a few heartbeats: last_alive must follow the idle process,
    // not its last record.
    std::thread::sleep(Duration::from_millis(1500));
    let killed_at = kill(&mut child);
    let in_file_before = records(&log).len();
    // The file got only the info records: 1 start + 200 numbered.
    assert_eq!(in_file_before, 201);
    start_again(&log);

    let all = records(&log);
    let (recovered, start) = recovered_then_start(&all);
    let dead_run = all[0]["run_id"].clone();
    assert_eq!(recovered.len(), lastwords_layer::MAX_RECOVERED);
    assert!(recovered.len() >= 1000);
    // The last debug records, oldest first, exactly as logged; the info
    // records among them are in the file already and are not copied again.
    let debug_is: Vec<u64> = (0..20_000u64).filter(|i| i % 100 != 0).collect();
    let want = &debug_is[debug_is.len() - recovered.len()..];
    for (r, &i) in recovered.iter().zip(want) {
        assert_eq!(r["i"], i, "{r}");
        assert_eq!(r["run_id"], dead_run);
        assert_eq!(r["level"], "DEBUG");
        assert_eq!(r["detail"], "only in the ring");
        assert!(r.get("seq").is_none(), "a ring-only record has no seq: {r}");
    }
    // Every record of the dead run is in the file once.
    let mut is = HashSet::new();
    for r in all
        .iter()
        .filter(|r| r["run_id"] == dead_run && r.get("i").is_some())
    {
        assert!(is.insert(r["i"].as_u64().unwrap()), "twice: {r}");
    }
    // The recipe of docs/reading-the-log.md, as written, shows the last 20
    // of the dead run: here its last debug records.
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reading-the-log.md"),
    )
    .unwrap();
    let recipe = doc
        .lines()
        .find_map(|l| {
            l.strip_prefix(
                "jq -s -c '(map(select(.kind == \"process_start\" and .previous_run.ended != null",
            )
        })
        .expect("the recipe is in the doc");
    let filter = format!(
        "(map(select(.kind == \"process_start\" and .previous_run.ended != null{}",
        recipe.strip_suffix("' logs/ingester.jsonl").unwrap()
    );
    let out = Command::new("jq")
        .args(["-s", "-c", &filter])
        .arg(&log)
        .output()
        .expect("jq is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last20: Vec<Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(last20.len(), 20);
    assert!(last20
        .iter()
        .all(|r| r["recovered"] == true && r["message"] == "debug record"));
    // `recovered` is each recovered line's last key.
    let text = std::fs::read_to_string(&log).unwrap();
    let marked = text
        .lines()
        .filter(|l| l.contains("\"recovered\""))
        .collect::<Vec<_>>();
    assert_eq!(marked.len(), recovered.len());
    assert!(marked.iter().all(|l| l.ends_with(",\"recovered\":true}")));
    let previous = &start["previous_run"];
    assert_eq!(previous["run_id"], dead_run);
    assert_eq!(previous["ended"], "no_final_record");
    assert_eq!(
        previous["cause"], "unknown",
        "a SIGKILL is no OOM kill: {previous}"
    );
    assert_eq!(previous["recovered_records"], recovered.len());
    assert!(previous["rss_bytes"].as_u64().unwrap() > 0);
    check_last_alive(previous, killed_at);
    // The new run's file records are numbered from 1 after the recovered
    // ones, and the dead run's file records kept their numbering.
    assert_eq!(start["seq"], 1);
    let dead_seqs: Vec<u64> = all[..in_file_before]
        .iter()
        .map(|r| r["seq"].as_u64().unwrap())
        .collect();
    assert!(dead_seqs.iter().copied().eq(1..=201));
}

#[test]
fn sigkill_during_an_eight_thread_storm_recovers_nothing_torn_or_twice() {
    let dir = scratch("storm");
    let log = dir.join("app.jsonl");
    let mut child = command("storm", &log).spawn().unwrap();
    wait_ready(&mut child);
    std::thread::sleep(Duration::from_millis(200));
    kill(&mut child);
    start_again(&log);

    let all = records(&log); // every line parses: nothing torn
    let (recovered, start) = recovered_then_start(&all);
    assert!(recovered.len() >= 1000, "{}", recovered.len());
    let mut seen = HashSet::new();
    let mut last = [None::<u64>; 8];
    for r in &recovered {
        assert_eq!(r["message"], "storm");
        assert_eq!(r["pad"], "storm storm storm storm");
        let (t, i) = (r["t"].as_u64().unwrap(), r["i"].as_u64().unwrap());
        assert!(seen.insert((t, i)), "recovered twice: {r}");
        // Each thread's records in the order it logged them.
        assert!(
            last[t as usize] < Some(i),
            "{r} after {:?}",
            last[t as usize]
        );
        last[t as usize] = Some(i);
    }
    assert_eq!(start["previous_run"]["ended"], "no_final_record");
}

/// A memory cgroup made for one test (below this process's own), removed
/// when dropped.
struct MemoryCgroup {
    dir: PathBuf,
    /// The file whose `oom_kill` line counts the kills.
    counter: &'static str,
}

impl MemoryCgroup {
    /// Creates it with a memory limit of `limit` bytes (cgroup v1 `memory`
    /// controller, else v2). Every failure comes back with its reason.
    fn create(name: &str, limit: u64) -> Result<MemoryCgroup, String> {
        let cgroups = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let mount_of = |want: &dyn Fn(&str, &str) -> bool| {
            mounts.lines().find_map(|line| {
                let (left, right) = line.split_once(" - ")?;
                let mount = left.split(' ').nth(4)?;
                let mut right = right.split(' ');
                let (fs, _, opts) = (right.next()?, right.next()?, right.next()?);
                want(fs, opts).then(|| PathBuf::from(mount))
            })
        };
        let v1 = cgroups.lines().find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.to_owned())
        });
        let name = format!("{name}-{}", std::process::id());
        if let Some(path) = v1 {
            let root =
                mount_of(&|fs, opts| fs == "cgroup" && opts.split(',').any(|o| o == "memory"))
                    .ok_or("cgroup v1 memory controller listed but not mounted")?;
            let dir = root.join(path.trim_start_matches('/')).join(name);
            let cg = MemoryCgroup::make(dir, "memory.oom_control")?;
            cg.write("memory.limit_in_bytes", &limit.to_string())?;
            if cg.dir.join("memory.memsw.limit_in_bytes").exists() {
                cg.write("memory.memsw.limit_in_bytes", &limit.to_string())?;
            }
            return Ok(cg);
        }
        let path = cgroups.lines().find_map(|l| l.strip_prefix("0::")).ok_or(
            "no memory cgroup: neither a v1 memory line nor a v2 line in /proc/self/cgroup",
        )?;
        let root = mount_of(&|fs, _| fs == "cgroup2").ok_or("cgroup2 is not mounted")?;
        let parent = root.join(path.trim_start_matches('/'));
        // Ignored: may already be on; if it is not, the limit write fails
        // with the reason below.
        let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+memory");
        let cg = MemoryCgroup::make(parent.join(name), "memory.events")?;
        cg.write("memory.max", &limit.to_string())?;
        // Ignored: without swap the file may not exist.
        let _ = cg.write("memory.swap.max", "0");
        Ok(cg)
    }

    fn make(dir: PathBuf, counter: &'static str) -> Result<MemoryCgroup, String> {
        // Ignored: a leftover of an earlier run; create_dir says what fails.
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir)
            .map_err(|e| format!("cannot create memory cgroup {}: {e}", dir.display()))?;
        Ok(MemoryCgroup { dir, counter })
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        let path = self.dir.join(file);
        std::fs::write(&path, value)
            .map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
    }

    fn oom_kills(&self) -> u64 {
        let text = std::fs::read_to_string(self.dir.join(self.counter)).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("oom_kill "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or_else(|| panic!("no oom_kill counter in {}: {text}", self.counter))
    }

    /// `cmd`, started inside this cgroup (a shell joins it, then execs).
    fn command(&self, scenario: &str, log: &Path) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg("echo $$ > \"$0\" && exec \"$@\"")
            .arg(self.dir.join("cgroup.procs"))
            .arg(child_exe())
            .arg(scenario)
            .env("LASTWORDS_PATH", log)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    }
}

impl Drop for MemoryCgroup {
    fn drop(&mut self) {
        // The children are gone; the kernel may take a moment to let go.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn oom_kill_in_a_memory_cgroup_is_reported_with_the_kernels_evidence() {
    const LIMIT: u64 = 64 << 20;
    let cg = MemoryCgroup::create("lastwords-oom", LIMIT)
        .unwrap_or_else(|reason| panic!("this test needs a memory cgroup: {reason}"));
    let dir = scratch("oom");
    let log = dir.join("app.jsonl");
    assert_eq!(cg.oom_kills(), 0);

    let mut child = cg.command("oom", &log).spawn().expect("run the child");
    let status = wait(&mut child);
    let died_at = now_micros();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert_eq!(cg.oom_kills(), 1, "the kernel counts the kill");
    let status = cg.command("start", &log).status().expect("run the child");
    assert!(status.success(), "{status:?}");

    let all = records(&log); // every line parses: nothing torn
    let (recovered, start) = recovered_then_start(&all);
    let previous = &start["previous_run"];
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    assert_eq!(previous["cause"], "oom_kill", "{previous}");
    let evidence = previous["evidence"].as_str().unwrap();
    assert!(
        evidence.contains("oom_kill") && evidence.contains("rose from 0 to 1"),
        "{evidence}"
    );
    assert_eq!(previous["memory_limit_bytes"], LIMIT);
    assert!(
        start["message"]
            .as_str()
            .unwrap()
            .ends_with("no_final_record (killed by the OOM killer)"),
        "{start}"
    );
    assert!(
        previous["rss_bytes"].as_u64().unwrap() > 1 << 20,
        "{previous}"
    );
    check_last_alive(previous, died_at);
    // The debug records of the allocation loop, in order, up to the end.
    assert!(recovered.len() >= 10, "{}", recovered.len());
    let first = recovered[0]["i"].as_u64().unwrap();
    for (want, r) in (first..).zip(&recovered) {
        assert_eq!(r["message"], "allocated");
        assert_eq!(r["level"], "DEBUG");
        assert_eq!(r["i"], want, "{r}");
    }
    // Its last record is about the last block it held (to within the
    // records its allocator was killed between).
    let held = recovered.last().unwrap()["held_mib"].as_u64().unwrap();
    assert!(held > 16 && held < LIMIT >> 20, "{held}");
}

#[test]
fn after_a_panic_the_ring_says_what_led_there() {
    let dir = scratch("panic");
    let log = dir.join("app.jsonl");
    let mut child = command("panic", &log).spawn().unwrap();
    assert_eq!(wait(&mut child).code(), Some(101));
    start_again(&log);

    let all = records(&log);
    let (recovered, start) = recovered_then_start(&all);
    // The panic record came after the debug records in the file, so the
    // file's last record of the dead run is still its death record.
    let is: Vec<u64> = recovered.iter().map(|r| r["i"].as_u64().unwrap()).collect();
    assert!(is.iter().copied().eq(0..50), "{is:?}");
    let previous = &start["previous_run"];
    assert_eq!(previous["ended"], "panic", "{previous}");
    assert_eq!(previous["recovered_records"], 50);
    assert!(
        previous.get("cause").is_none(),
        "a cause only without a final record: {previous}"
    );
    assert!(previous["last_alive"].is_string());
}

#[test]
fn two_processes_on_one_log_keep_separate_rings() {
    let dir = scratch("two");
    let log = dir.join("app.jsonl");
    let mut a = command("debug", &log)
        .env("RECORDER_RECORDS", "3000")
        .spawn()
        .unwrap();
    wait_ready(&mut a);
    let mut b = command("debug", &log)
        .env("RECORDER_RECORDS", "5000")
        .spawn()
        .unwrap();
    wait_ready(&mut b);
    // The first holds `app.ring`; the second found it held and took its own.
    let b_ring = dir.join(format!("app.{}.ring", b.id()));
    assert!(dir.join("app.ring").is_file());
    assert!(b_ring.is_file(), "no {}", b_ring.display());
    kill(&mut a);
    kill(&mut b);
    start_again(&log);

    let all = records(&log);
    let (recovered, start) = recovered_then_start(&all);
    // The previous run is the one whose record is last in the file: the
    // second; its ring holds its own records only, whole and in order.
    let previous = &start["previous_run"];
    assert_eq!(previous["pid"], b.id(), "{previous}");
    let debug_is: Vec<u64> = (0..5000u64).filter(|i| i % 100 != 0).collect();
    let want = &debug_is[debug_is.len() - recovered.len()..];
    assert!(recovered.len() > 1000, "{}", recovered.len());
    for (r, &i) in recovered.iter().zip(want) {
        assert_eq!(r["pid"], b.id(), "{r}");
        assert_eq!(r["i"], i, "{r}");
    }
    // Its ring file is gone once its records are in the log.
    assert!(!b_ring.exists());
}

#[test]
fn off_means_no_ring_file_and_no_heartbeat_and_a_bad_filter_is_an_error() {
    let dir = scratch("off");
    let log = dir.join("app.jsonl");
    let out = command("off", &log).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "threads 1\n");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["app.jsonl"], "nothing but the log");
    // With the recorder on, the ring file is there.
    start_again(&log);
    assert!(dir.join("app.ring").is_file());

    let out = command("bad-filter", &dir.join("bad.jsonl"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("lastwords: invalid recorder filter"),
        "{text}"
    );
}

#[test]
fn a_ring_file_that_cannot_be_made_leaves_the_log_working() {
    let dir = scratch("unmakeable");
    let log = dir.join("app.jsonl");
    // A directory where the ring file would go.
    std::fs::create_dir(dir.join("app.ring")).unwrap();
    let out = command("start", &log)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[lastwords] flight recorder off: "),
        "{stderr}"
    );
    let all = records(&log);
    assert_eq!(all[0]["kind"], "process_start");
}
