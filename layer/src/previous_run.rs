//! The `process_start` record and its report on how the previous run ended.
//!
//! At start the sink has read the last 256 KiB of the file as it was before
//! this run. The records there are parsed from the end with `serde_json`
//! (an unterminated last line, cut by a kill, and the partial first line of
//! the tail are skipped); the previous run is the `run_id` of the last
//! complete record, and its records decide `previous_run.ended`:
//!
//! | last death record of the run | `ended` |
//! |---|---|
//! | `process_exit` | `exit`, with `exit_code` (`panic` if the code is 101 after a panic on the main thread) |
//! | `fatal_signal` SIGABRT right after a `panic` (`panic = "abort"`, double panic) | `panic`, with `signal` |
//! | `panic` | `panic` |
//! | `signal` | `signal`, with `signal` |
//! | `fatal_signal` | `fatal_signal`, with `signal` (and `stack_overflow: true` for an overflow) |
//! | none, and the pid is alive running the same executable | `still_running` |
//! | none | `no_final_record` (SIGKILL, the OOM killer, power loss) |
//!
//! `last_breadcrumbs` are those of the death record, else the run's last
//! `breadcrumb` records (at most 16, oldest first). A panic seen in the run
//! is reported as `panic: {message, location}` too. With no previous run in
//! the file `previous_run` is `null`.

use serde_json::{json, Map, Value};
use tracing_core::Level;

use crate::record;
use crate::sink::Sink;

/// Most breadcrumbs reported.
const CRUMBS: usize = 16;

/// Writes `process_start` for this run; `tail` is the end of the file as it
/// was before this run opened it.
pub(crate) fn write_process_start(sink: &Sink, tail: &[u8]) {
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let previous = previous_run(tail, sink.pid(), &|pid| still_running(pid));
    let summary = match &previous {
        Value::Object(map) => {
            let ended = map.get("ended").and_then(Value::as_str).unwrap_or("?");
            let how = match (map.get("exit_code"), map.get("signal")) {
                (Some(code), _) => format!(" (exit code {code})"),
                (None, Some(Value::String(signal)))
                    if map.get("stack_overflow") == Some(&Value::Bool(true)) =>
                {
                    format!(" ({signal}, stack overflow)")
                }
                (None, Some(Value::String(signal))) => format!(" ({signal})"),
                _ => String::new(),
            };
            format!("; previous run ended: {ended}{how}")
        }
        _ => String::new(),
    };
    let previous = serde_json::to_vec(&previous).unwrap_or_else(|_| b"null".to_vec());
    record::emit(
        sink,
        Level::INFO,
        "process_start",
        &format_args!("process {} started{summary}", sink.pid()),
        |f| {
            f.str("exe", &exe);
            f.key("previous_run");
            f.out.extend_from_slice(&previous);
        },
    );
}

/// The report on the last run recorded in `tail`, or `null`. `alive`
/// says whether a pid still runs this executable.
fn previous_run(tail: &[u8], our_pid: u32, alive: &dyn Fn(u32) -> bool) -> Value {
    let complete = match tail.iter().rposition(|&b| b == b'\n') {
        Some(end) => &tail[..end],
        None => return Value::Null,
    };
    // Newest first; only this run's records, stopping at its start.
    let mut run: Vec<Map<String, Value>> = Vec::new();
    let mut run_id: Option<String> = None;
    for line in complete.rsplit(|&b| b == b'\n') {
        let Ok(Value::Object(record)) = serde_json::from_slice::<Value>(line) else {
            continue; // a partial first line, or not one of ours
        };
        let Some(id) = record.get("run_id").and_then(Value::as_str) else {
            continue;
        };
        match &run_id {
            None => run_id = Some(id.to_owned()),
            Some(current) if current != id => continue, // another run, interleaved
            Some(_) => {}
        }
        let start = kind(&record) == "process_start";
        run.push(record);
        if start {
            break;
        }
    }
    let Some(run_id) = run_id else {
        return Value::Null;
    };
    let pid = run
        .iter()
        .find_map(|r| r.get("pid").and_then(Value::as_u64))
        .unwrap_or(0);
    let mut report = Map::new();
    report.insert("run_id".into(), json!(run_id));
    report.insert("pid".into(), json!(pid));

    let death = run.iter().position(|r| {
        matches!(
            kind(r),
            "process_exit" | "panic" | "signal" | "fatal_signal"
        )
    });
    let last_panic = run.iter().find(|r| kind(r) == "panic");
    let ended = match death {
        Some(i) => {
            let record = &run[i];
            let panic_before = run.get(i + 1).is_some_and(|r| kind(r) == "panic");
            match kind(record) {
                "process_exit" => {
                    let code = record.get("exit_code").cloned().unwrap_or(Value::Null);
                    report.insert("exit_code".into(), code.clone());
                    let main_panicked = last_panic
                        .is_some_and(|p| p.get("thread").and_then(Value::as_str) == Some("main"));
                    if code == json!(101) && main_panicked {
                        "panic"
                    } else {
                        "exit"
                    }
                }
                "panic" => "panic",
                k => {
                    let signal = record.get("signal").cloned().unwrap_or(Value::Null);
                    let abort = signal == json!("SIGABRT");
                    report.insert("signal".into(), signal);
                    if record.get("stack_overflow") == Some(&Value::Bool(true)) {
                        // Died of SIGABRT after std's message, but the
                        // overflow is what the reader needs to know.
                        report.insert("stack_overflow".into(), Value::Bool(true));
                    }
                    if k == "fatal_signal" && abort && panic_before {
                        "panic"
                    } else if k == "fatal_signal" {
                        "fatal_signal"
                    } else {
                        "signal"
                    }
                }
            }
        }
        None if pid != 0 && pid != u64::from(our_pid) && alive(pid as u32) => "still_running",
        None => "no_final_record",
    };
    report.insert("ended".into(), json!(ended));
    if let Some(panic) = last_panic {
        report.insert(
            "panic".into(),
            json!({
                "message": panic.get("message").cloned().unwrap_or(Value::Null),
                "location": panic.get("location").cloned().unwrap_or(Value::Null),
            }),
        );
    }
    let from_death = death
        .and_then(|i| run[i].get("breadcrumbs"))
        .and_then(Value::as_array)
        .filter(|crumbs| !crumbs.is_empty())
        .cloned();
    let crumbs = from_death.unwrap_or_else(|| {
        let mut crumbs: Vec<Value> = run
            .iter()
            .filter(|r| kind(r) == "breadcrumb")
            .take(CRUMBS)
            .map(crumb_of_record)
            .collect();
        crumbs.reverse();
        crumbs
    });
    report.insert("last_breadcrumbs".into(), Value::Array(crumbs));
    Value::Object(report)
}

fn kind(record: &Map<String, Value>) -> &str {
    record.get("kind").and_then(Value::as_str).unwrap_or("")
}

/// A `breadcrumb` record in the shape of a ring entry.
fn crumb_of_record(record: &Map<String, Value>) -> Value {
    let name = record
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .or_else(|| record.get("fn").and_then(Value::as_str))
        .unwrap_or("");
    json!({
        "name": name,
        "file": record.get("file").cloned().unwrap_or(Value::Null),
        "line": record.get("line").cloned().unwrap_or(Value::Null),
        "thread_id": record.get("thread_id").cloned().unwrap_or(Value::Null),
        "timestamp": record.get("timestamp").cloned().unwrap_or(Value::Null),
    })
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

    fn line(v: Value) -> String {
        format!("{v}\n")
    }

    fn rec(run: &str, seq: u64, kind: &str, extra: Value) -> String {
        let mut v = json!({"message": "m", "kind": kind, "pid": 42, "run_id": run, "seq": seq, "thread": "main"});
        if let (Value::Object(m), Value::Object(e)) = (&mut v, extra) {
            m.extend(e);
        }
        line(v)
    }

    fn report(tail: &str) -> Value {
        previous_run(tail.as_bytes(), 7, &|_| false)
    }

    #[test]
    fn empty_or_unparseable_tail_has_no_previous_run() {
        assert_eq!(report(""), Value::Null);
        assert_eq!(report("garbage\n{\"half"), Value::Null);
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
            (panic.clone() + &rec("r", 3, "event", json!({})), "panic"),
            (rec("r", 2, "event", json!({})), "no_final_record"),
        ];
        for (records, ended) in cases {
            let r = report(&(start.clone() + &records));
            assert_eq!(r["ended"], ended, "{records}");
        }
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
        assert_eq!(
            previous_run(tail.as_bytes(), 7, &|_| true)["ended"],
            "still_running"
        );
        assert_eq!(
            previous_run(tail.as_bytes(), 42, &|_| true)["ended"],
            "no_final_record"
        );
    }
}
