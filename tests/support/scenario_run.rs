//! Running the examples as child processes and reading their JSONL with the
//! real `jq` and `lnav`, for `tests/scenarios.rs` and `tests/tools.rs`.
//!
//! The example binaries are the ones `cargo test` builds next to the test
//! executable (`target/<profile>/examples/<name>`). Each run gets its own
//! temporary directory and `LASTWORDS_PATH`, so runs never share a log
//! unless a test means it to.

#![allow(dead_code)] // each test file uses a different part

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The longest any example run may take before the test kills it and fails.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// The path of an example binary built by `cargo test`.
pub fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/debug/deps/<test> -> target/debug/examples/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in target/<profile>/deps")
        .join("examples");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "example binary {} not found: run the tests with `cargo test` (which builds the \
         examples) or run `cargo build --examples` first",
        path.display()
    );
    let built = modified(&path);
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newest_source = [
        root.join("examples").join(format!("{name}.rs")),
        root.join("src"),
        root.join("layer/src"),
        root.join("macros/src"),
    ]
    .iter()
    .map(|p| newest(p))
    .max()
    .expect("sources");
    assert!(
        built >= newest_source,
        "example binary {} is older than its sources: `cargo test --test <name>` does not \
         rebuild examples; run `cargo build --examples` first, or plain `cargo test`",
        path.display()
    );
    path
}

fn modified(path: &Path) -> std::time::SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or(std::time::UNIX_EPOCH)
}

/// The newest modification time of a file, or of the files under a dir.
fn newest(path: &Path) -> std::time::SystemTime {
    match std::fs::read_dir(path) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|e| newest(&e.path()))
            .max()
            .unwrap_or(std::time::UNIX_EPOCH),
        Err(_) => modified(path),
    }
}

/// A fresh directory under the system's temp dir, removed when the test
/// passes and kept (with its path printed) when it fails.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "lastwords-{label}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path); // a leftover of an earlier run with the same pid
        std::fs::create_dir_all(&path).expect("create a temp dir");
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("kept for inspection: {}", self.0.display());
        } else {
            // Best effort: a leftover temp dir is harmless.
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// What a finished child left behind.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    pub fn signal(&self) -> Option<i32> {
        std::os::unix::process::ExitStatusExt::signal(&self.status)
    }
}

/// A running example whose stdout lines arrive on a channel.
pub struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    stdout: Vec<String>,
    stderr: thread::JoinHandle<String>,
    started: Instant,
}

/// Starts `example` with `LASTWORDS_PATH=log` and extra environment.
pub fn spawn(name: &str, args: &[&str], log: &Path, env: &[(&str, &str)]) -> Running {
    let mut cmd = Command::new(example(name));
    cmd.args(args)
        .env("LASTWORDS_PATH", log)
        .env("RUST_BACKTRACE", "0")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start example {name}: {e}"));
    let (tx, lines) = mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut err = child.stderr.take().expect("piped stderr");
    let stderr = thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s); // whatever arrived is enough for a message
        s
    });
    Running {
        child,
        lines,
        stdout: Vec::new(),
        stderr,
        started: Instant::now(),
    }
}

impl Running {
    /// Waits until the child prints `line` on stdout.
    pub fn wait_for_line(&mut self, line: &str) {
        let deadline = Instant::now() + RUN_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    let found = l == line;
                    self.stdout.push(l);
                    if found {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill(); // it is failing the test anyway
                    panic!(
                        "the child never printed {line:?}; stdout so far: {:?}",
                        self.stdout
                    );
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal to the child.
    pub fn signal(&self, signo: i32) {
        // SAFETY: kill(2) has no memory-safety preconditions.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, signo) };
        assert_eq!(rc, 0, "kill({}, {signo}) failed", self.child.id());
    }

    /// Waits for the child to end, at most `RUN_TIMEOUT` since it started.
    pub fn wait(mut self) -> Output {
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                break status;
            }
            if self.started.elapsed() > RUN_TIMEOUT {
                let _ = self.child.kill(); // failing anyway; do not leave it running
                let _ = self.child.wait();
                panic!("the child did not end within {RUN_TIMEOUT:?}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        // The reader thread ends at EOF, after the child's death.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.stdout.push(l);
        }
        let stderr = self.stderr.join().unwrap_or_default();
        Output {
            status,
            stdout: self.stdout.join("\n"),
            stderr,
        }
    }
}

/// Runs `example` to its end.
pub fn run(name: &str, args: &[&str], log: &Path) -> Output {
    spawn(name, args, log, &[]).wait()
}

/// Every record of a JSONL file, parsed. Every line must be one complete
/// JSON object; the only exception allowed is an unterminated last line
/// when `allow_cut_last` (a run killed by SIGKILL mid-write).
pub fn records(path: &Path, allow_cut_last: bool) -> Vec<Value> {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if let Some(last) = lines.last() {
        if !last.ends_with('\n') {
            assert!(
                allow_cut_last,
                "{}: the last line is not terminated: {last:?}",
                path.display()
            );
            lines.pop();
        }
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let value: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("{}:{}: not JSON ({e}): {line:?}", path.display(), i + 1)
            });
            assert!(
                value.is_object(),
                "{}:{}: not an object",
                path.display(),
                i + 1
            );
            value
        })
        .collect()
}

/// Fails loudly when a tool the log-reading tests need is missing.
pub fn require_tool(tool: &str) {
    match Command::new(tool).arg("-V").output() {
        Ok(_) => {}
        Err(e) => panic!(
            "`{tool}` is needed to test reading the log with the tools users have, and it \
             cannot be run ({e}). Install it: `apt-get install -y jq lnav`, or run the suite with scripts/test.sh, which does"
        ),
    }
}

/// Runs `jq -s -c <filter>` on a file (all records as one array) and parses
/// its output as one JSON value.
pub fn jq_slurp(filter: &str, file: &Path) -> Value {
    let out = jq(&["-s", "-c", filter], file);
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("jq {filter:?} printed no single JSON value ({e}): {out}"))
}

/// Runs `jq <args> <file>`, asserting success; returns stdout.
pub fn jq(args: &[&str], file: &Path) -> String {
    require_tool("jq");
    let out = Command::new("jq")
        .args(args)
        .arg(file)
        .output()
        .expect("run jq");
    assert!(
        out.status.success(),
        "jq {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("jq prints UTF-8")
}

/// The lnav format file shipped in the repository.
pub fn lnav_format_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/lnav/lastwords.json")
}

/// Runs lnav headless with the repository's format file on `file` and returns
/// the CSV rows of `sql` (header first). lnav exits 0 even when the SQL
/// fails, so a failure shows as missing output: this asserts a header row.
pub fn lnav_csv(sql: &str, file: &Path) -> Vec<Vec<String>> {
    require_tool("lnav");
    let config = TempDir::new("lnav-config");
    let formats = config.join("formats/lastwords");
    std::fs::create_dir_all(&formats).expect("create the lnav formats dir");
    std::fs::copy(lnav_format_file(), formats.join("lastwords.json"))
        .expect("copy the lnav format file");
    let out = Command::new("lnav")
        .arg("-N")
        .arg("-n")
        .arg("-I")
        .arg(config.path())
        .arg("-c")
        .arg(format!(";{sql}"))
        .arg("-c")
        .arg(":write-csv-to -")
        .arg(file)
        // lnav keeps state under $HOME; keep it in the temp dir.
        .env("HOME", config.path())
        .env("XDG_CONFIG_HOME", config.path())
        .stdin(Stdio::null())
        .output()
        .expect("run lnav");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows: Vec<Vec<String>> = stdout
        .lines()
        .map(|l| l.split(',').map(str::to_owned).collect())
        .collect();
    assert!(
        !rows.is_empty(),
        "lnav printed nothing for {sql:?} (the query failed, or found no rows: lnav then prints nothing); stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    rows
}

/// Checks that lnav, with the shipped format, recognises the file, parses
/// every line (no `invalid` rows) and counts as many records as jq.
pub fn assert_lnav_agrees_with_jq(file: &Path) {
    let jq_count = jq_slurp("length", file).as_u64().expect("a count");
    let rows = lnav_csv(
        "SELECT count(*) AS n, sum(log_level = 'invalid') AS invalid FROM lastwords_log",
        file,
    );
    assert_eq!(rows[0], ["n", "invalid"], "lnav's header: {rows:?}");
    assert_eq!(
        rows[1],
        [jq_count.to_string(), "0".to_owned()],
        "lnav (records, invalid lines) vs jq's {jq_count} records in {}",
        file.display()
    );
}

/// The 1-based line of the only line of `examples/<file>` that contains
/// `needle`, so tests can check the `line` a record names.
pub fn source_line(file: &str, needle: &str) -> u64 {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("read the example's source");
    let hits: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains(needle))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        hits.len(),
        1,
        "{needle:?} must occur once in {file}: {hits:?}"
    );
    hits[0] as u64
}
