//! The examples' scenarios end to end: each test runs an example as a child
//! process with `LASTWORDS_PATH` in a fresh temp dir, then asks the produced
//! JSONL the questions its story asks, with the real `jq`, and checks that
//! the real `lnav` (with `contrib/lnav/lastwords.json`) parses every line.
//!
//! Steps of each test:
//! 1. run the example (`target/<profile>/examples/<name>`, built by `cargo test`);
//! 2. check the exit status the parent sees;
//! 3. parse every line (only a line cut by SIGKILL may fail, and only the last);
//! 4. query the log with jq: which function ended first, at which site and
//!    line, with which outcome, and how the process ended;
//! 5. check that lnav reads as many records as jq and no invalid line.
//!
//! jq and lnav must be installed (`apt-get install -y jq lnav`); a missing
//! tool fails the test with that message.

#[path = "support/scenario_run.rs"]
mod scenario_run;

use std::time::Duration;

use scenario_run::{
    assert_lnav_agrees_with_jq, jq_slurp, records, run, source_line, spawn, TempDir,
};
use serde_json::{json, Value};

/// The first exit of one of the ingester's run functions that was not a
/// cancellation: the task that ended first, and how.
const FIRST_TASK_EXIT: &str = r#"[.[] | select(.kind == "fn_exit" and .unexpected == true and .outcome != "cancelled")] | sort_by(.seq) | first | {fn, site, line, outcome, error, level}"#;

/// How the run ended, as the final records say.
const ENDING: &str = r#"[.[] | select(.kind == "process_exit" or .kind == "signal" or .kind == "fatal_signal")] | map({kind, exit_code, signal})"#;

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
}

/// Runs the ingester's scenario to its end and checks the common answers:
/// status 1, one ERROR event naming the task, `process_exit` with code 1.
fn ingester_run(scenario: &str, dir: &TempDir) -> std::path::PathBuf {
    let log = dir.join("ingester.jsonl");
    let out = run("ingester", &["--scenario", scenario], &log);
    assert_eq!(out.code(), Some(1), "{scenario}: {out:?}");
    records(&log, false);
    assert_eq!(
        jq_slurp(ENDING, &log),
        json!([{"kind": "process_exit", "exit_code": 1, "signal": null}]),
        "{scenario}: how the run ended"
    );
    assert_lnav_agrees_with_jq(&log);
    log
}

#[test]
fn ingester_task_error_names_the_question_mark_in_the_connection_loop() {
    let dir = TempDir::new("task-error");
    let log = ingester_run("task-error", &dir);
    let first = jq_slurp(FIRST_TASK_EXIT, &log);
    assert!(str_of(&first, "fn").ends_with("run_firehose"), "{first}");
    assert_eq!(first["site"], "?", "{first}");
    assert_eq!(
        first["line"],
        source_line("ingester.rs", "let frame = conn.next_frame().await?;"),
        "{first}"
    );
    assert_eq!(first["outcome"], "err", "{first}");
    assert_eq!(first["level"], "ERROR", "{first}");
    let error = str_of(&first, "error");
    assert!(
        error.contains("connection to relay-1.example:443 failed")
            && error.contains("peer reset the stream"),
        "the error with its source chain: {error}"
    );
    assert_eq!(
        jq_slurp(r#"[.[] | select(.message == "task failed") | .task]"#, &log),
        json!(["firehose"])
    );
}

#[test]
fn ingester_task_panic_names_the_task_and_the_panic_location() {
    let dir = TempDir::new("task-panic");
    let log = ingester_run("task-panic", &dir);
    let first = jq_slurp(FIRST_TASK_EXIT, &log);
    assert!(str_of(&first, "fn").ends_with("run_labeler"), "{first}");
    assert_eq!(first["site"], "unwind", "{first}");
    assert_eq!(first["outcome"], "panic", "{first}");

    let panics = jq_slurp(
        r#"[.[] | select(.kind == "panic") | {message, location, breadcrumbs: (.breadcrumbs | tostring)}]"#,
        &log,
    );
    assert_eq!(panics.as_array().map(Vec::len), Some(1), "{panics}");
    let panic = &panics[0];
    let line = source_line("ingester.rs", r#".expect("label score is a number")"#);
    assert!(
        str_of(panic, "location").starts_with(&format!("examples/ingester.rs:{line}:")),
        "{panic}"
    );
    assert!(
        str_of(panic, "message").contains("label score is a number"),
        "{panic}"
    );
    assert!(
        str_of(panic, "breadcrumbs").contains("entering select with all three tasks"),
        "the last breadcrumbs before the panic: {panic}"
    );
}

#[test]
fn ingester_loop_bug_names_the_return_that_ended_the_loop() {
    let dir = TempDir::new("loop-bug");
    let log = ingester_run("loop-bug", &dir);
    let first = jq_slurp(FIRST_TASK_EXIT, &log);
    assert!(str_of(&first, "fn").ends_with("run_backfill"), "{first}");
    assert_eq!(first["site"], "return", "{first}");
    assert_eq!(
        first["line"],
        source_line("ingester.rs", "return Ok(());"),
        "{first}"
    );
    assert_eq!(first["outcome"], "ok", "{first}");
    assert_eq!(
        first["level"], "ERROR",
        "unexpected exits are errors: {first}"
    );
    // The two other tasks were cancelled when the runtime shut down.
    let cancelled = jq_slurp(
        r#"[.[] | select(.kind == "fn_exit" and .outcome == "cancelled") | .fn | split("::") | last] | sort"#,
        &log,
    );
    assert_eq!(cancelled, json!(["run_firehose", "run_labeler"]));
}

#[test]
fn ingester_killed_is_reported_by_the_next_start() {
    let dir = TempDir::new("killed");
    let log = dir.join("ingester.jsonl");
    let out = run("ingester", &["--scenario", "killed"], &log);
    assert_eq!(out.signal(), Some(libc::SIGKILL), "{out:?}");
    let first_stdout = out.stdout.clone();
    let killed = records(&log, true);
    let killed_run = killed[0]["run_id"].clone();
    assert_eq!(killed[0]["kind"], "process_start");
    assert!(
        killed.iter().all(|r| r["kind"] != "process_exit"),
        "SIGKILL leaves no final record"
    );
    let len_after_kill = std::fs::metadata(&log).expect("the log").len();
    let cut = !std::fs::read(&log).expect("the log").ends_with(b"\n");

    // The next start reads the tail of the file and reports the kill.
    let out = run("ingester", &["--scenario", "loop-bug"], &log);
    assert_eq!(out.code(), Some(1), "{out:?}");
    let text = std::fs::read(&log).expect("the log");
    let second = String::from_utf8_lossy(&text[len_after_kill as usize..]);
    assert!(
        !second.trim_start_matches('\n').is_empty(),
        "the second run appended to the same file"
    );
    let starts = jq_slurp(
        r#"[.[] | select(.kind == "process_start")] | map({run_id, previous_run: (.previous_run | {run_id, pid, ended, last_breadcrumbs: (.last_breadcrumbs | tostring)})})"#,
        &log,
    );
    assert_eq!(starts.as_array().map(Vec::len), Some(2), "{starts}");
    let previous = &starts[1]["previous_run"];
    assert_eq!(previous["run_id"], killed_run, "{previous}");
    assert_eq!(previous["pid"], killed[0]["pid"], "{previous}");
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    assert!(
        str_of(previous, "last_breadcrumbs").contains("about to be killed with SIGKILL"),
        "the last breadcrumbs of the killed run: {previous}"
    );
    killed_run_debug_records_are_recovered(&log, &killed_run, &first_stdout, cut);
    if cut {
        // A record cut by the kill stays one invalid line in the middle; the
        // writer started the next run on a fresh line.
        // Everything the second run wrote still parses.
        for line in second.trim_start_matches('\n').lines() {
            let parsed: Result<Value, _> = serde_json::from_str(line);
            assert!(
                parsed.is_ok(),
                "the second run wrote an invalid line: {line:?}"
            );
        }
        eprintln!("the kill cut the last record of the first run");
    } else {
        records(&log, false);
        assert_lnav_agrees_with_jq(&log);
    }
}

/// The debug records the killed run logged before its death, which only its
/// flight recorder kept: the next start copied them into the log just before
/// its `process_start`, oldest first, marked `recovered`, without `seq`; and
/// the jq command the killed run printed shows them.
fn killed_run_debug_records_are_recovered(
    log: &std::path::Path,
    killed_run: &Value,
    stdout: &str,
    cut: bool,
) {
    let text = std::fs::read_to_string(log).expect("the log");
    // A line cut by the kill, if any, is the only one that does not parse.
    let all: Vec<Value> = text
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let start = all
        .iter()
        .rposition(|r| r["kind"] == "process_start")
        .expect("the second start");
    let first = all
        .iter()
        .position(|r| r.get("recovered").is_some())
        .unwrap_or_else(|| panic!("no recovered record in {text}"));
    let recovered = &all[first..start];
    let batches: Vec<u64> = recovered
        .iter()
        .map(|r| {
            assert_eq!(r["recovered"], true, "{r}");
            assert_eq!(&r["run_id"], killed_run, "{r}");
            assert!(r.get("seq").is_none(), "{r}");
            assert_eq!(r["level"], "DEBUG", "{r}");
            assert_eq!(r["message"], "buffering a batch in memory", "{r}");
            r["batch"].as_u64().expect("batch")
        })
        .collect();
    assert_eq!(batches, [1, 2, 3, 4, 5], "oldest first");
    // Older than the records around them: they were logged before the kill.
    let times: Vec<&str> = recovered.iter().map(|r| str_of(r, "timestamp")).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert!(
        *times.last().unwrap() < str_of(&all[start], "timestamp"),
        "{times:?}"
    );
    assert_eq!(all[start]["previous_run"]["recovered_records"], 5);

    // The command the killed run printed, as printed.
    let command = stdout
        .lines()
        .skip_while(|l| !l.starts_with("after the next start"))
        .nth(1)
        .unwrap_or_else(|| panic!("no jq command printed: {stdout}"));
    let filter = command
        .split_once('\'')
        .and_then(|(_, rest)| rest.rsplit_once('\''))
        .map(|(filter, path)| {
            assert_eq!(path.trim(), log.display().to_string(), "{command}");
            filter
        })
        .unwrap_or_else(|| panic!("not a jq command: {command}"));
    assert!(command.trim_start().starts_with("jq -c '"), "{command}");
    // jq stops at a cut line: read the valid lines only, as
    // docs/reading-the-log.md says to.
    let file = if cut {
        let valid = log.with_extension("valid.jsonl");
        let lines: Vec<&str> = text
            .lines()
            .filter(|l| serde_json::from_str::<Value>(l).is_ok())
            .collect();
        std::fs::write(&valid, lines.join("\n") + "\n").expect("write");
        valid
    } else {
        log.to_path_buf()
    };
    let shown: Vec<Value> = scenario_run::jq(&["-c", filter], &file)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jq prints JSON"))
        .collect();
    let want: Vec<Value> = recovered
        .iter()
        .map(|r| {
            json!({"timestamp": r["timestamp"], "level": "DEBUG",
                   "message": "buffering a batch in memory", "batch": r["batch"]})
        })
        .collect();
    assert_eq!(shown, want);
}

#[test]
fn ingester_healthy_shuts_down_gracefully_on_sigterm() {
    let dir = TempDir::new("healthy");
    let log = dir.join("ingester.jsonl");
    let mut child = spawn("ingester", &["--scenario", "healthy"], &log, &[]);
    child.wait_for_line("ready");
    std::thread::sleep(Duration::from_millis(300));
    child.signal(libc::SIGTERM);
    let out = child.wait();
    assert_eq!(
        out.code(),
        Some(0),
        "graceful shutdown keeps working: {out:?}"
    );
    records(&log, false);
    assert_eq!(
        jq_slurp(ENDING, &log),
        json!([
            {"kind": "signal", "exit_code": null, "signal": "SIGTERM"},
            {"kind": "process_exit", "exit_code": 0, "signal": null},
        ])
    );
    let exits = jq_slurp(
        r#"[.[] | select(.kind == "fn_exit") | {fn: (.fn | split("::") | last), site, outcome}] | sort_by(.fn)"#,
        &log,
    );
    assert_eq!(
        exits,
        json!([
            {"fn": "run_backfill", "site": "cancelled", "outcome": "cancelled"},
            {"fn": "run_firehose", "site": "cancelled", "outcome": "cancelled"},
            {"fn": "run_labeler", "site": "cancelled", "outcome": "cancelled"},
        ])
    );
    assert_eq!(
        jq_slurp(
            r#"[.[] | select(.message == "shutdown complete")] | length"#,
            &log
        ),
        json!(1)
    );
    assert_lnav_agrees_with_jq(&log);
}

/// Parses `<writer>: <n> of <total> records reached <path>; <k> lost; last line <state>`.
fn quit_report(stdout: &str, writer: &str) -> (u64, u64, u64, String) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&format!("{writer}: ")))
        .unwrap_or_else(|| panic!("no report line for {writer}: {stdout}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| -> u64 {
        words[i]
            .parse()
            .unwrap_or_else(|_| panic!("not a number at word {i}: {line}"))
    };
    (
        num(1),
        num(3),
        num(words.len() - 5),
        words[words.len() - 1].to_owned(),
    )
}

#[test]
fn quit_loses_no_record_on_process_exit() {
    let dir = TempDir::new("quit");
    let log = dir.join("quit.jsonl");
    let out = run("quit", &[], &log);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let (delivered, total, lost, last_line) = quit_report(&out.stdout, "lastwords");
    assert_eq!(
        (delivered, total, lost),
        (20_000, 20_000, 0),
        "{}",
        out.stdout
    );
    assert_eq!(last_line, "complete");
    records(&log, false);
    assert_eq!(
        jq_slurp(
            r#"[.[] | select(.message == "frame rendered") | .frame] | [length, (unique | length), min, max]"#,
            &log
        ),
        json!([20_000, 20_000, 0, 19_999])
    );
    assert_eq!(
        jq_slurp(r#"last | {kind, exit_code}"#, &log),
        json!({"kind": "process_exit", "exit_code": 0}),
        "process::exit(0) is the last record"
    );
    assert_lnav_agrees_with_jq(&log);

    // Side by side in the same run: a `fmt().json()` writer behind a buffer
    // flushed every 4,096 records loses everything after the last flush.
    let (delivered, total, lost, last_line) = quit_report(&out.stdout, "buffered");
    assert_eq!(
        (delivered, total, lost),
        (16_384, 20_000, 3_616),
        "{}",
        out.stdout
    );
    assert_eq!(last_line, "complete");
    let in_file = records(&dir.join("quit.buffered.jsonl"), false)
        .iter()
        .filter(|r| r["message"] == "frame rendered")
        .count();
    assert_eq!(in_file, 16_384, "the report matches the file");
}

#[test]
fn quit_non_blocking_reports_what_it_lost() {
    let dir = TempDir::new("quit-nb");
    let log = dir.join("quit.jsonl");
    let out = run("quit", &["--writer", "non-blocking"], &log);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let (delivered, total, lost, last_line) = quit_report(&out.stdout, "non-blocking");
    assert_eq!(total, 20_000);
    assert_eq!(delivered + lost, total, "{}", out.stdout);
    let file = dir.join("quit.non-blocking.jsonl");
    let complete = records(&file, true)
        .iter()
        .filter(|r| r["message"] == "frame rendered")
        .count() as u64;
    assert_eq!(complete, delivered, "the report matches the file");
    assert!(
        ["complete", "cut"].contains(&last_line.as_str()),
        "{last_line}"
    );
    eprintln!("tracing_appender::non_blocking lost {lost} of {total} records on process::exit");
}

#[test]
fn stream_tracker_counts_each_early_return() {
    let dir = TempDir::new("stream-tracker");
    let log = dir.join("stream_tracker.jsonl");
    let out = spawn("stream_tracker", &[], &log, &[("RUST_LOG", "debug")]).wait();
    assert_eq!(out.code(), Some(0), "{out:?}");
    records(&log, false);
    let by_site = jq_slurp(
        r#"[.[] | select(.kind == "fn_exit" and .label == "relocate")] | group_by([.site, .line]) | map({site: .[0].site, line: .[0].line, outcome: .[0].outcome, level: .[0].level, n: length})"#,
        &log,
    );
    let find = |site: &str, line: u64| -> Value {
        by_site
            .as_array()
            .and_then(|all| all.iter().find(|g| g["site"] == site && g["line"] == line))
            .cloned()
            .unwrap_or_else(|| panic!("no exit at {site} line {line}: {by_site}"))
    };
    let missing = find(
        "return",
        source_line(
            "stream_tracker.rs",
            "return Err(RelocateError::RecordMissing(id));",
        ),
    );
    assert_eq!(
        missing["n"], 17,
        "every 7th stream has no record: {missing}"
    );
    assert_eq!(missing["outcome"], "err");
    assert_eq!(missing["level"], "WARN", "err_level = \"warn\"");
    let no_target = find(
        "?",
        source_line(
            "stream_tracker.rs",
            ".ok_or(RelocateError::NoTargetNode(id))?;",
        ),
    );
    assert!(no_target["n"].as_u64() >= Some(1), "{no_target}");
    let full = find("?", source_line("stream_tracker.rs", "})?;"));
    let blocked = jq_slurp(
        r#"[.[] | select(.kind == "breadcrumb" and .message == "relocation queue full: blocking send")] | length"#,
        &log,
    );
    assert_eq!(
        full["n"], blocked,
        "one breadcrumb per blocking send: {full}"
    );
    let total: u64 = by_site
        .as_array()
        .map(|all| all.iter().filter_map(|g| g["n"].as_u64()).sum())
        .unwrap_or(0);
    assert_eq!(total, 120, "exactly one fn_exit per call: {by_site}");
    assert_lnav_agrees_with_jq(&log);
}

#[test]
fn broker_records_the_error_and_the_panic_and_keeps_serving() {
    let dir = TempDir::new("broker");
    let log = dir.join("broker.jsonl");
    let out = run("broker", &["--selftest"], &log);
    assert_eq!(
        out.code(),
        Some(0),
        "the selftest got the replies it expected: {out:?}"
    );
    records(&log, false);
    let exits = jq_slurp(
        r#"[.[] | select(.kind == "fn_exit") | {fn: (.fn | split("::") | last), site, line, outcome, error}] | sort_by(.outcome)"#,
        &log,
    );
    let exits = exits.as_array().expect("an array");
    assert_eq!(exits.len(), 5, "one record per connection: {exits:?}");
    let err: Vec<&Value> = exits.iter().filter(|e| e["outcome"] == "err").collect();
    assert_eq!(err.len(), 1, "{exits:?}");
    assert_eq!(err[0]["site"], "?");
    assert_eq!(
        err[0]["line"],
        source_line("broker.rs", "match parse_request(&line)?")
    );
    assert!(
        str_of(err[0], "error").contains(r#"unknown command "SUBSCRIBE""#),
        "{}",
        err[0]
    );
    let panicked: Vec<&Value> = exits.iter().filter(|e| e["outcome"] == "panic").collect();
    assert_eq!(panicked.len(), 1, "{exits:?}");
    assert_eq!(panicked[0]["site"], "unwind");
    assert_eq!(
        exits.iter().filter(|e| e["outcome"] == "ok").count(),
        3,
        "{exits:?}"
    );
    assert!(
        exits.iter().all(|e| e["fn"] == "handle_connection"),
        "{exits:?}"
    );

    let location = jq_slurp(r#"[.[] | select(.kind == "panic") | .location]"#, &log);
    let line = source_line("broker.rs", "let payload = parts.next().unwrap();");
    assert!(
        location[0]
            .as_str()
            .is_some_and(|l| l.starts_with(&format!("examples/broker.rs:{line}:"))),
        "{location}"
    );
    // The server kept serving: a publish was recorded after the panic.
    assert_eq!(
        jq_slurp(
            r#"(map(select(.kind == "panic")) | first | .seq) as $p | [.[] | select(.message == "published" and .seq > $p)] | length"#,
            &log
        ),
        json!(1)
    );
    assert_lnav_agrees_with_jq(&log);
}

#[test]
fn backfill_shows_the_empty_success() {
    let dir = TempDir::new("backfill");
    let log = dir.join("backfill.jsonl");
    let out = run("backfill", &[], &log);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains("backfill succeeded with 0 commits"),
        "{out:?}"
    );
    records(&log, false);
    let exit = jq_slurp(
        r#"[.[] | select(.kind == "fn_exit")] | map({fn: (.fn | split("::") | last), site, line, outcome, value})"#,
        &log,
    );
    assert_eq!(exit.as_array().map(Vec::len), Some(1), "{exit}");
    let exit = &exit[0];
    assert_eq!(exit["fn"], "backfill");
    assert_eq!(exit["site"], "tail");
    assert_eq!(exit["line"], source_line("backfill.rs", "    Ok(commits)"));
    assert_eq!(exit["outcome"], "ok");
    assert!(
        str_of(exit, "value").contains("[]"),
        "the empty result is visible: {exit}"
    );
    assert_lnav_agrees_with_jq(&log);
}
