//! The `process_start` record and its report on how the previous run ended.
//!
//! At start the sink has read the last 256 KiB of the file as it was before
//! this run. The records there are read from the end with lastwords' own
//! small JSON reader ([`json_read`](crate::json_read); an unterminated last
//! line, cut by a kill, the partial first line of the tail and anything
//! that is not one of our records are skipped); the previous run is the
//! `run_id` of the last complete record, and its records, in `seq` order,
//! decide `previous_run.ended`.
//!
//! `ended` says how the run *ended*, not what the newest death-looking
//! record was: a `panic` or `signal` after which the run went on (a thread
//! panicked, or the application handled a SIGHUP itself, and then served
//! for hours) is not its end. A record *X* is the run's end when no later
//! record of the run shows it going on; a later record does not count when
//! it is
//!
//! - from another thread and written within [`DYING_MICROS`] of *X* (other
//!   threads keep logging for the instant a dying process takes to die), or
//! - a `fn_exit` of the same thread with `outcome: "panic"`, after a `panic`
//!   (the unwinding leaving annotated functions).
//!
//! A `process_exit` is always the end: nothing comes back from `exit`, and
//! other threads keep logging while its handlers run.
//!
//! | the run's end | `ended` |
//! |---|---|
//! | `process_exit` | `exit`, with `exit_code` (`panic` if the code is 101 after a panic on the main thread) |
//! | `fatal_signal` SIGABRT right after a `panic` (`panic = "abort"`, double panic) | `panic`, with `signal` |
//! | `panic` | `panic` (`still_running` if the pid still runs the executable) |
//! | `signal` | `signal`, with `signal` |
//! | `fatal_signal` | `fatal_signal`, with `signal` (and `stack_overflow: true` for an overflow) |
//! | none, and the pid is alive running the same executable | `still_running` |
//! | none | `no_final_record` (SIGKILL, the OOM killer, power loss) |
//!
//! `earlier` lists the run's panics and signals that were not its end, the
//! last [`EARLIER`] of them, oldest first, each as `{kind, timestamp, seq,
//! thread, thread_id}` plus `signal` (signals) or `message` (at most
//! [`MESSAGE_BYTES`] bytes) and `location` (panics). It is always present,
//! `[]` when there were none.
//!
//! `last_breadcrumbs` are those of the end record, else the run's last
//! `breadcrumb` records (at most 16, oldest first). The run's last panic is
//! reported as `panic: {message, location}` too. With no previous run in the
//! file `previous_run` is `null`.

use tracing_core::Level;

use crate::json;
use crate::json_read::Value;
use crate::record;
use crate::sink::Sink;

/// Most breadcrumbs reported.
const CRUMBS: usize = 16;

/// Most entries in `earlier`: the last ones are kept.
pub(crate) const EARLIER: usize = 8;

/// Longest panic message copied into an `earlier` entry, in bytes.
pub(crate) const MESSAGE_BYTES: usize = 256;

/// How long after a death record other threads' records are taken for the
/// noise of a dying process rather than for the run going on: 10 ms. A
/// process killed by a signal dies within microseconds of its record; a
/// run that went on after a handled signal or a thread's panic logs for
/// much longer than this.
pub(crate) const DYING_MICROS: i64 = 10_000;

/// What the flight recorder adds to the report on a run, given its
/// `run_id`, `pid` and `ended`: a JSON object of members (having recovered
/// that run's last records into the file first).
pub(crate) type Recorded<'a> = &'a dyn Fn(&str, u32, &str) -> Option<Vec<u8>>;

/// Writes `process_start` for this run; `tail` is the end of the file as it
/// was before this run opened it; `recorded` adds the flight recorder's
/// members to `previous_run`.
pub(crate) fn write_process_start(sink: &Sink, tail: &[u8], recorded: Recorded<'_>) {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let mut report = previous_run(tail, sink.pid(), &|pid| still_running(pid));
    if let Some(report) = &mut report {
        let ids = Value::parse(&report.json).map(|v| {
            let run_id = v
                .get("run_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            (
                run_id,
                v.get("pid").and_then(Value::as_u64).unwrap_or(0) as u32,
            )
        });
        if let Some(extra) = ids.and_then(|(run_id, pid)| recorded(&run_id, pid, report.ended)) {
            // Only on the kernel's evidence (see the flight recorder).
            report.oom_kill = Value::parse(&extra)
                .is_some_and(|v| v.get("cause").and_then(Value::as_str) == Some("oom_kill"));
            add_members(&mut report.json, &extra);
        }
    }
    let summary = report.as_ref().map(Report::summary).unwrap_or_default();
    record::emit(
        sink,
        Level::INFO,
        "process_start",
        &format_args!("process {} started{summary}", sink.pid()),
        |f| {
            f.str("exe", &exe);
            // Parsed back so that it can be cut to fit the record's cap.
            let previous = report.as_ref().and_then(|r| Value::parse(&r.json));
            f.json("previous_run", &previous.unwrap_or(Value::Null));
        },
    );
}

/// Appends the members of the JSON object `extra` to the JSON object
/// `object`.
fn add_members(object: &mut Vec<u8>, extra: &[u8]) {
    let (Some(b'}'), Some(b'{'), Some(b'}')) = (object.last(), extra.first(), extra.last()) else {
        return;
    };
    if extra.len() <= 2 {
        return;
    }
    object.pop();
    if object.last() != Some(&b'{') {
        object.push(b',');
    }
    object.extend_from_slice(&extra[1..]);
}

/// The report on the previous run: its JSON, and what the one-line summary
/// on stderr says.
#[derive(Debug)]
struct Report {
    ended: &'static str,
    /// The exit code's JSON number text.
    exit_code: Option<String>,
    signal: Option<String>,
    stack_overflow: bool,
    /// The flight recorder found the kernel's evidence of an OOM kill.
    oom_kill: bool,
    /// How many panics and signals the run went on after (all of them,
    /// not only the ones `earlier` lists).
    earlier: usize,
    /// The whole `previous_run` object.
    json: Vec<u8>,
}

impl Report {
    /// `; previous run ended: signal (SIGTERM)` for the `process_start`
    /// message, and how many panics and signals the run outlived. Only what the reader validated goes in: a number's text,
    /// and a signal name made of letters and digits.
    fn summary(&self) -> String {
        let signal = self
            .signal
            .as_deref()
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric()));
        let how = match (&self.exit_code, signal) {
            (Some(code), _) => format!(" (exit code {code})"),
            (None, Some(signal)) if self.stack_overflow => format!(" ({signal}, stack overflow)"),
            (None, Some(signal)) => format!(" ({signal})"),
            (None, None) if self.oom_kill => " (killed by the OOM killer)".to_owned(),
            (None, None) => String::new(),
        };
        let after = match self.earlier {
            0 => String::new(),
            1 => "; it went on after 1 panic or signal".to_owned(),
            n => format!("; it went on after {n} panics or signals"),
        };
        format!("; previous run ended: {}{how}{after}", self.ended)
    }
}

/// One record of the previous run.
struct Rec<'a> {
    v: Value<'a>,
    /// Its `seq`, or that of the record before it in the file.
    seq: u64,
}

impl<'a> Rec<'a> {
    fn str(&self, key: &str) -> Option<&str> {
        self.v.get(key).and_then(Value::as_str)
    }

    fn kind(&self) -> &str {
        self.str("kind").unwrap_or("")
    }

    fn thread_id(&self) -> Option<u64> {
        self.v.get("thread_id").and_then(Value::as_u64)
    }

    fn micros(&self) -> Option<i64> {
        self.str("timestamp").and_then(micros)
    }

    fn is_death(&self) -> bool {
        matches!(self.kind(), "panic" | "signal" | "fatal_signal")
    }

    /// Whether `later`, a record after this death record, is only what a
    /// process makes while it dies of it (see the module docs), rather than
    /// a sign that the run went on.
    fn dying_noise(&self, later: &Rec<'_>) -> bool {
        let same_thread = self.thread_id().is_some() && self.thread_id() == later.thread_id();
        if same_thread {
            self.kind() == "panic"
                && later.kind() == "fn_exit"
                && later.str("outcome") == Some("panic")
        } else {
            match (self.micros(), later.micros()) {
                (Some(at), Some(then)) => then - at <= DYING_MICROS,
                _ => false,
            }
        }
    }
}

/// The report on the last run recorded in `tail`, or `None` when there is
/// none. `alive` says whether a pid still runs this executable.
fn previous_run(tail: &[u8], our_pid: u32, alive: &dyn Fn(u32) -> bool) -> Option<Report> {
    let complete = &tail[..tail.iter().rposition(|&b| b == b'\n')?];
    // Newest first; only this run's records, stopping at its start.
    let mut run: Vec<Rec<'_>> = Vec::new();
    let mut run_id: Option<String> = None;
    for line in complete.rsplit(|&b| b == b'\n') {
        let Some(v @ Value::Object(_)) = Value::parse(line) else {
            continue; // a partial first line, or not one of ours
        };
        let Some(id) = v.get("run_id").and_then(Value::as_str) else {
            continue;
        };
        match &run_id {
            None => run_id = Some(id.to_owned()),
            Some(current) if current != id => continue, // another run, interleaved
            Some(_) => {}
        }
        let start = v.get("kind").and_then(Value::as_str) == Some("process_start");
        run.push(Rec { v, seq: 0 });
        if start {
            break;
        }
    }
    let run_id = run_id?;
    // In `seq` order: with several threads, the order of the lines can
    // differ a little from the order in which records took their numbers.
    run.reverse();
    let mut seq = 0;
    for rec in &mut run {
        seq = rec.v.get("seq").and_then(Value::as_u64).unwrap_or(seq);
        rec.seq = seq;
    }
    run.sort_by_key(|r| r.seq);

    let pid = run
        .iter()
        .find_map(|r| r.v.get("pid").and_then(Value::as_u64))
        .unwrap_or(0);
    let is_alive = pid != 0 && pid != u64::from(our_pid) && alive(pid as u32);

    // The end, and the records that are part of it.
    let last_exit = run.iter().rposition(|r| r.kind() == "process_exit");
    let newest = run
        .iter()
        .rposition(|r| r.is_death() || r.kind() == "process_exit");
    let end = match newest {
        Some(i) if run[i].kind() == "process_exit" => Some(i),
        Some(i) if run[i + 1..].iter().all(|later| run[i].dying_noise(later)) => Some(i),
        _ => last_exit,
    };
    let mut part_of_end: Vec<usize> = end.into_iter().collect();
    let mut ended = "no_final_record";
    let mut exit_code = None;
    let mut signal = None;
    let mut stack_overflow = false;
    let last_panic = run.iter().rposition(|r| r.kind() == "panic");
    if let Some(e) = end {
        let record = &run[e];
        match record.kind() {
            "process_exit" => {
                let code = record.v.get("exit_code").cloned();
                let main_panic = run[..e]
                    .iter()
                    .rposition(|r| r.kind() == "panic" && r.str("thread") == Some("main"));
                ended = match (&code, main_panic) {
                    (Some(Value::Number("101")), Some(p)) => {
                        part_of_end.push(p);
                        "panic"
                    }
                    _ => "exit",
                };
                exit_code = code;
            }
            "panic" => ended = if is_alive { "still_running" } else { "panic" },
            kind => {
                signal = record.v.get("signal").cloned();
                // Died of SIGABRT after std's message, but the overflow is
                // what the reader needs to know.
                stack_overflow = matches!(record.v.get("stack_overflow"), Some(Value::Bool(true)));
                // `panic = "abort"` or a double panic: the panic, then the
                // abort it caused.
                let panic_before = run[..e].iter().rposition(Rec::is_death).filter(|&p| {
                    run[p].kind() == "panic"
                        && run[p + 1..e].iter().all(|later| run[p].dying_noise(later))
                });
                ended = match (kind, signal.as_ref().and_then(Value::as_str), panic_before) {
                    ("fatal_signal", Some("SIGABRT"), Some(p)) => {
                        part_of_end.push(p);
                        "panic"
                    }
                    ("fatal_signal", ..) => "fatal_signal",
                    _ => "signal",
                };
            }
        }
    } else if is_alive {
        ended = "still_running";
    }

    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"run_id\":");
    json::string_vec(&mut out, &run_id);
    json::key_vec(&mut out, "pid");
    json::int(&mut out, pid);
    json::key_vec(&mut out, "ended");
    json::string_vec(&mut out, ended);
    if let Some(code) = &exit_code {
        json::key_vec(&mut out, "exit_code");
        code.write(&mut out);
    }
    if let Some(signal) = &signal {
        json::key_vec(&mut out, "signal");
        signal.write(&mut out);
    }
    if stack_overflow {
        out.extend_from_slice(b",\"stack_overflow\":true");
    }
    if let Some(p) = last_panic {
        let null = Value::Null;
        let panic = &run[p].v;
        out.extend_from_slice(b",\"panic\":{\"message\":");
        panic.get("message").unwrap_or(&null).write(&mut out);
        out.extend_from_slice(b",\"location\":");
        panic.get("location").unwrap_or(&null).write(&mut out);
        out.push(b'}');
    }
    out.extend_from_slice(b",\"earlier\":[");
    let earlier: Vec<&Rec<'_>> = run
        .iter()
        .enumerate()
        .filter(|(i, r)| r.is_death() && !part_of_end.contains(i))
        .map(|(_, r)| r)
        .collect();
    for (i, rec) in earlier[earlier.len().saturating_sub(EARLIER)..]
        .iter()
        .enumerate()
    {
        if i > 0 {
            out.push(b',');
        }
        write_earlier(&mut out, rec);
    }
    out.push(b']');
    json::key_vec(&mut out, "last_breadcrumbs");
    match end.and_then(|e| run[e].v.get("breadcrumbs")) {
        Some(crumbs @ Value::Array(items)) if !items.is_empty() => crumbs.write(&mut out),
        _ => {
            let crumbs: Vec<&Rec<'_>> = run
                .iter()
                .rev()
                .filter(|r| r.kind() == "breadcrumb")
                .take(CRUMBS)
                .collect();
            out.push(b'[');
            for (i, rec) in crumbs.iter().rev().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_crumb_of_record(&mut out, rec);
            }
            out.push(b']');
        }
    }
    out.push(b'}');
    Some(Report {
        ended,
        exit_code: exit_code.map(|code| {
            let mut text = Vec::new();
            code.write(&mut text);
            String::from_utf8_lossy(&text).into_owned()
        }),
        signal: signal.and_then(|s| s.as_str().map(str::to_owned)),
        stack_overflow,
        oom_kill: false,
        earlier: earlier.len(),
        json: out,
    })
}

/// An `earlier` entry: `{kind, timestamp, seq, thread, thread_id}` and the
/// signal, or the panic's message and location.
fn write_earlier(out: &mut Vec<u8>, rec: &Rec<'_>) {
    out.extend_from_slice(b"{\"kind\":");
    json::string_vec(out, rec.kind());
    let null = Value::Null;
    let copy = |out: &mut Vec<u8>, key: &str| {
        json::key_vec(out, key);
        rec.v.get(key).unwrap_or(&null).write(out);
    };
    copy(out, "timestamp");
    copy(out, "seq");
    copy(out, "thread");
    copy(out, "thread_id");
    if rec.kind() == "panic" {
        json::key_vec(out, "message");
        match rec.str("message") {
            Some(message) => json::string_vec(out, truncated(message, MESSAGE_BYTES)),
            None => out.extend_from_slice(b"null"),
        }
        copy(out, "location");
    } else {
        copy(out, "signal");
    }
    out.push(b'}');
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
fn truncated(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// A `breadcrumb` record in the shape of a ring entry.
fn write_crumb_of_record(out: &mut Vec<u8>, rec: &Rec<'_>) {
    let name = rec
        .str("message")
        .filter(|m| !m.is_empty())
        .or_else(|| rec.str("fn"))
        .unwrap_or("");
    out.extend_from_slice(b"{\"name\":");
    json::string_vec(out, name);
    let null = Value::Null;
    for key in ["file", "line", "thread_id", "timestamp"] {
        json::key_vec(out, key);
        rec.v.get(key).unwrap_or(&null).write(out);
    }
    out.push(b'}');
}

/// Microseconds since the Unix epoch of a record timestamp
/// (`2026-11-25T08:02:03.123456Z`); `None` for any other text.
fn micros(ts: &str) -> Option<i64> {
    let b = ts.as_bytes();
    let shape = b.len() == 27
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    if !shape {
        return None;
    }
    let num = |from: usize, to: usize| -> i64 {
        b[from..to]
            .iter()
            .fold(0, |n, &c| n * 10 + i64::from(c - b'0'))
    };
    let (y, m, d) = (num(0, 4), num(5, 7), num(8, 10));
    // Days from the civil date (the inverse of clock.rs's conversion).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    let secs = days * 86_400 + num(11, 13) * 3600 + num(14, 16) * 60 + num(17, 19);
    Some(secs * 1_000_000 + num(20, 26))
}

/// Whether `pid` is alive and runs the same executable as this process
/// (a recycled pid running something else does not count).
fn still_running(pid: u32) -> bool {
    let theirs = std::fs::read_link(format!("/proc/{pid}/exe"));
    let ours = std::fs::read_link("/proc/self/exe");
    matches!((theirs, ours), (Ok(a), Ok(b)) if a == b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value as J};

    /// A record at `ms` milliseconds into the run, on thread `tid`.
    fn rec_at(run: &str, seq: u64, kind: &str, ms: i64, tid: u64, extra: J) -> String {
        let at = crate::clock::Timestamp::from_micros(1_795_593_723_000_000 + ms * 1_000).format();
        let mut v = json!({
            "timestamp": String::from_utf8(at.to_vec()).unwrap(),
            "message": "m", "kind": kind, "pid": 42, "run_id": run, "seq": seq,
            "thread": if tid == 1 { "main".to_owned() } else { format!("t{tid}") },
            "thread_id": tid,
        });
        if let (J::Object(m), J::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        format!("{v}\n")
    }

    /// A record on the main thread, `seq` seconds into the run.
    fn rec(run: &str, seq: u64, kind: &str, extra: J) -> String {
        rec_at(run, seq, kind, seq as i64 * 1_000, 1, extra)
    }

    fn report(tail: &str) -> J {
        match previous_run(tail.as_bytes(), 7, &|_| false) {
            Some(report) => serde_json::from_slice(&report.json).expect("valid JSON"),
            None => J::Null,
        }
    }

    fn kinds(earlier: &J) -> Vec<&str> {
        earlier
            .as_array()
            .expect("earlier is an array")
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn empty_or_unparseable_tail_has_no_previous_run() {
        assert_eq!(report(""), J::Null);
        assert_eq!(report("garbage\n{\"half"), J::Null);
        assert_eq!(report("{\"no_run_id\":1}\n[1]\n\"s\"\n"), J::Null);
    }

    #[test]
    fn exit_code_and_breadcrumbs_of_the_last_run() {
        let crumbs = json!([{"name": "a", "file": "f.rs", "line": 1}]);
        let tail = rec("old", 1, "process_start", json!({}))
            + &rec("old", 2, "process_exit", json!({"exit_code": 0}))
            + &rec("new", 1, "process_start", json!({}))
            + &rec("new", 2, "event", json!({}))
            + &rec(
                "new",
                3,
                "process_exit",
                json!({"exit_code": 3, "breadcrumbs": crumbs}),
            )
            + "{\"cut by a ki";
        let r = report(&tail);
        assert_eq!(r["run_id"], "new");
        assert_eq!(r["pid"], 42);
        assert_eq!(r["ended"], "exit");
        assert_eq!(r["exit_code"], 3);
        assert_eq!(r["last_breadcrumbs"], crumbs);
        assert_eq!(r["earlier"], json!([]));
    }

    #[test]
    fn endings() {
        let start = rec("r", 1, "process_start", json!({}));
        let panic = rec(
            "r",
            2,
            "panic",
            json!({"location": "a.rs:1:2", "thread": "main"}),
        );
        let cases = [
            (
                rec("r", 2, "signal", json!({"signal": "SIGTERM"})),
                "signal",
            ),
            (
                rec("r", 2, "fatal_signal", json!({"signal": "SIGSEGV"})),
                "fatal_signal",
            ),
            (
                panic.clone() + &rec("r", 3, "fatal_signal", json!({"signal": "SIGABRT"})),
                "panic",
            ),
            (
                panic.clone() + &rec("r", 3, "process_exit", json!({"exit_code": 101})),
                "panic",
            ),
            (panic.clone(), "panic"),
            (rec("r", 2, "event", json!({})), "no_final_record"),
        ];
        for (records, ended) in cases {
            let r = report(&(start.clone() + &records));
            assert_eq!(r["ended"], ended, "{records}");
            assert_eq!(r["earlier"], json!([]), "{records}");
        }
    }

    /// The run went on after a thread's panic: 1,000 requests later it was
    /// killed. The panic was not its end.
    #[test]
    fn a_panic_the_run_outlived_is_earlier_not_the_end() {
        let mut tail = rec("r", 1, "process_start", json!({}))
            + &rec_at(
                "r",
                2,
                "panic",
                2_000,
                5,
                json!({"message": "index out of bounds", "location": "src/h.rs:9:5"}),
            );
        for seq in 3..1_003 {
            tail += &rec_at("r", seq, "event", 2_000 + seq as i64, 1, json!({}));
        }
        let r = report(&tail);
        assert_eq!(r["ended"], "no_final_record", "{r}");
        assert_eq!(kinds(&r["earlier"]), ["panic"]);
        let earlier = &r["earlier"][0];
        assert_eq!(earlier["seq"], 2);
        assert_eq!(earlier["thread"], "t5");
        assert_eq!(earlier["thread_id"], 5);
        assert_eq!(earlier["location"], "src/h.rs:9:5");
        assert_eq!(earlier["message"], "index out of bounds");
        assert!(earlier["timestamp"].as_str().unwrap().ends_with('Z'));
        // Still reported as the run's last panic.
        assert_eq!(r["panic"]["location"], "src/h.rs:9:5");
    }

    /// A SIGHUP the application handled (config reload), hours of work,
    /// then an OOM kill.
    #[test]
    fn a_handled_signal_is_earlier_not_the_end() {
        let tail = rec("r", 1, "process_start", json!({}))
            + &rec("r", 2, "signal", json!({"signal": "SIGHUP", "signo": 1}))
            + &rec("r", 3, "event", json!({"message": "reloaded"}))
            + &rec_at("r", 4, "event", 3 * 3_600_000, 2, json!({}));
        let r = report(&tail);
        assert_eq!(r["ended"], "no_final_record", "{r}");
        assert_eq!(r.get("signal"), None, "{r}");
        assert_eq!(kinds(&r["earlier"]), ["signal"]);
        assert_eq!(r["earlier"][0]["signal"], "SIGHUP");
        assert_eq!(r["earlier"][0]["seq"], 2);
        // Then a SIGTERM that did end it.
        let ended = tail + &rec("r", 5, "signal", json!({"signal": "SIGTERM"}));
        let r = report(&ended);
        assert_eq!(
            (&r["ended"], &r["signal"]),
            (&json!("signal"), &json!("SIGTERM"))
        );
        assert_eq!(kinds(&r["earlier"]), ["signal"]);
    }

    /// A record the same thread writes after its own signal record shows
    /// the run going on, however soon; other threads get a few
    /// milliseconds to die.
    #[test]
    fn the_moment_of_dying_is_not_going_on() {
        let start = rec_at("r", 1, "process_start", 0, 1, json!({}));
        let term = rec_at("r", 2, "signal", 1_000, 1, json!({"signal": "SIGTERM"}));
        let other_soon = rec_at("r", 3, "event", 1_002, 2, json!({}));
        let other_late = rec_at("r", 3, "event", 1_050, 2, json!({}));
        let same_soon = rec_at("r", 3, "event", 1_000, 1, json!({}));
        assert_eq!(
            report(&(start.clone() + &term + &other_soon))["ended"],
            "signal"
        );
        assert_eq!(
            report(&(start.clone() + &term + &other_late))["ended"],
            "no_final_record"
        );
        assert_eq!(
            report(&(start.clone() + &term + &same_soon))["ended"],
            "no_final_record"
        );
        // Unwinding through annotated functions after a main-thread panic,
        // killed before `exit`.
        let panic = rec_at("r", 2, "panic", 1_000, 1, json!({}));
        let unwind = rec_at("r", 3, "fn_exit", 1_500, 1, json!({"outcome": "panic"}));
        let r = report(&(start.clone() + &panic + &unwind));
        assert_eq!(r["ended"], "panic", "{r}");
        assert_eq!(r["earlier"], json!([]));
    }

    #[test]
    fn records_are_taken_in_seq_order_not_line_order() {
        // A thread's record took seq 3 before the exit took 4, but its line
        // landed later.
        let tail = rec("r", 1, "process_start", json!({}))
            + &rec("r", 2, "signal", json!({"signal": "SIGHUP"}))
            + &rec("r", 4, "process_exit", json!({"exit_code": 0}))
            + &rec("r", 3, "event", json!({}));
        let r = report(&tail);
        assert_eq!((&r["ended"], &r["exit_code"]), (&json!("exit"), &json!(0)));
        assert_eq!(kinds(&r["earlier"]), ["signal"]);
    }

    #[test]
    fn earlier_keeps_the_last_ones() {
        let mut tail = rec("r", 1, "process_start", json!({}));
        for seq in 2..30 {
            tail += &rec("r", seq, "panic", json!({"message": "x".repeat(1_000)}));
            tail += &rec_at("r", 100 + seq, "event", seq as i64 * 1_000, 9, json!({}));
        }
        tail += &rec("r", 200, "process_exit", json!({"exit_code": 0}));
        let r = report(&tail);
        assert_eq!(r["ended"], "exit");
        let earlier = r["earlier"].as_array().unwrap();
        assert_eq!(earlier.len(), EARLIER);
        let seqs: Vec<_> = earlier.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
        assert_eq!(seqs, (22..30).collect::<Vec<_>>());
        assert_eq!(earlier[0]["message"].as_str().unwrap().len(), MESSAGE_BYTES);
    }

    #[test]
    fn a_stack_overflow_is_reported_as_such() {
        let tail = rec("r", 1, "process_start", json!({}))
            + &rec(
                "r",
                2,
                "fatal_signal",
                json!({"signal": "SIGSEGV", "stack_overflow": true}),
            );
        let r = report(&tail);
        assert_eq!(r["ended"], "fatal_signal");
        assert_eq!(r["signal"], "SIGSEGV");
        assert_eq!(r["stack_overflow"], true);
        let plain = rec("r", 1, "process_start", json!({}))
            + &rec("r", 2, "fatal_signal", json!({"signal": "SIGSEGV"}));
        assert_eq!(report(&plain).get("stack_overflow"), None);
    }

    #[test]
    fn breadcrumb_records_when_there_is_no_death_record() {
        let tail = rec("r", 1, "process_start", json!({}))
            + &rec(
                "r",
                2,
                "breadcrumb",
                json!({"message": "one", "file": "a.rs", "line": 1}),
            )
            + &rec(
                "r",
                3,
                "breadcrumb",
                json!({"message": "two", "file": "a.rs", "line": 2}),
            )
            + &rec("r", 4, "event", json!({}));
        let r = report(&tail);
        assert_eq!(r["ended"], "no_final_record");
        let names: Vec<_> = r["last_breadcrumbs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].clone())
            .collect();
        assert_eq!(names, [json!("one"), json!("two")]);
    }

    #[test]
    fn a_live_process_is_still_running_but_not_ourselves() {
        let tail = rec("r", 1, "process_start", json!({}));
        let ended = |ours| {
            let report = previous_run(tail.as_bytes(), ours, &|_| true).unwrap();
            report.ended
        };
        assert_eq!(ended(7), "still_running");
        assert_eq!(ended(42), "no_final_record");
    }

    #[test]
    fn the_summary_says_only_what_was_validated() {
        let tail = rec("r", 1, "process_start", json!({}))
            + &rec(
                "r",
                2,
                "signal",
                json!({"signal": "SIG\u{1b}[2J\n[lastwords] forged"}),
            );
        let report = previous_run(tail.as_bytes(), 7, &|_| false).unwrap();
        assert_eq!(report.summary(), "; previous run ended: signal");
        let tail = rec("r", 1, "process_start", json!({}))
            + &rec("r", 2, "process_exit", json!({"exit_code": -3}));
        let report = previous_run(tail.as_bytes(), 7, &|_| false).unwrap();
        assert_eq!(
            report.summary(),
            "; previous run ended: exit (exit code -3)"
        );
        let tail = rec("r", 1, "process_start", json!({}))
            + &rec("r", 2, "panic", json!({}))
            + &rec("r", 3, "signal", json!({"signal": "SIGHUP"}))
            + &rec("r", 4, "event", json!({}));
        let report = previous_run(tail.as_bytes(), 7, &|_| false).unwrap();
        assert_eq!(
            report.summary(),
            "; previous run ended: no_final_record; it went on after 2 panics or signals"
        );
    }

    #[test]
    fn timestamps_read_back_as_written() {
        for micros_in in [
            0,
            951_782_400_000_007,
            1_795_593_723_123_456,
            4_102_444_799_999_999,
        ] {
            let text = crate::clock::Timestamp::from_micros(micros_in).format();
            assert_eq!(micros(std::str::from_utf8(&text).unwrap()), Some(micros_in));
        }
        assert_eq!(micros("2026-11-25T08:02:03.123456"), None);
        assert_eq!(micros("2026-11-25T08:02:03+123456Z"), None);
        assert_eq!(micros("２026-11-25T08:02:03.12345Z"), None);
    }

    /// Random and cut tails never make the reader panic, and whatever it
    /// reports is valid JSON.
    #[test]
    fn any_tail_gives_a_valid_report_or_none() {
        let good = rec("r", 1, "process_start", json!({}))
            + &rec("r", 2, "breadcrumb", json!({"file": "a.rs", "line": 1}))
            + &rec(
                "r",
                3,
                "panic",
                json!({"message": "é", "location": "a.rs:1:1"}),
            )
            + &rec(
                "r",
                4,
                "fatal_signal",
                json!({"signal": "SIGABRT", "breadcrumbs": [{"name": "n"}]}),
            );
        let bytes = good.as_bytes();
        let mut state = 0x2545_F491_4F6C_DD1D_u64;
        for round in 0..5_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut tail = bytes[(state as usize % bytes.len())..].to_vec();
            if round % 2 == 0 && !tail.is_empty() {
                let at = (state >> 20) as usize % tail.len();
                tail[at] = (state >> 40) as u8;
            }
            if let Some(report) = previous_run(&tail, 7, &|_| false) {
                let parsed: Result<J, _> = serde_json::from_slice(&report.json);
                assert!(
                    parsed.is_ok(),
                    "{:?}",
                    String::from_utf8_lossy(&report.json)
                );
            }
        }
    }
}
