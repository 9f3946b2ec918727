//! The recipes of `docs/reading-the-log.md`, run as written with the real
//! `jq` and `lnav` on a log of four runs of the ingester example:
//!
//! 1. `killed`: SIGKILL after startup, no final record;
//! 2. `loop-bug`: the backfill returns `Ok(())`, exit 1;
//! 3. `task-panic`: the labeler panics, exit 1;
//! 4. `healthy`: SIGTERM, graceful shutdown, exit 0.
//!
//! Each recipe's text is checked to appear verbatim in the doc, so the doc
//! cannot drift from what is tested. jq and lnav must be installed
//! (`apt-get install -y jq lnav`), and DuckDB's Python module for the DuckDB
//! recipe (`pip install duckdb`, in `python3` or in the interpreter named by
//! `$LASTWORDS_TEST_PYTHON`, which `scripts/test.sh` sets up); a missing tool fails
//! its test with what to install.

#[path = "support/scenario_run.rs"]
mod scenario_run;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use scenario_run::{jq, jq_slurp, lnav_csv, records, run, spawn};
use serde_json::{json, Value};

const RUNS_ENDED: &str = r#"group_by(.run_id) | map({start: .[0].timestamp, pid: .[0].pid, exit_code: (map(select(.kind == "process_exit")) | last | .exit_code), signal: (map(select(.kind == "signal" or .kind == "fatal_signal")) | last | .signal), panics: (map(select(.kind == "panic")) | length), final_record: any(.[]; .kind == "process_exit" or .kind == "signal" or .kind == "fatal_signal")}) | sort_by(.start) | .[]"#;
const PREVIOUS_RUN: &str = r#"select(.kind == "process_start") | {timestamp, pid, previous: (.previous_run | {pid, ended, exit_code, signal})}"#;
const ERROR_EXITS: &str = r#"select(.kind == "fn_exit" and (.outcome == "err" or .outcome == "panic" or .unexpected == true) and .outcome != "cancelled") | {timestamp, pid, fn, site, file, line, outcome, error}"#;
const KILLED_CRUMBS: &str = r#"select(.kind == "process_start" and .previous_run.ended == "no_final_record") | {pid: .previous_run.pid, last_breadcrumbs: (.previous_run.last_breadcrumbs | map(.name))}"#;
const PANIC_CRUMBS: &str =
    r#"select(.kind == "panic") | {pid, location, breadcrumbs: (.breadcrumbs | map(.name))}"#;
const BETWEEN: &str =
    r#"select(.timestamp >= "2026-05-01T10:00:00" and .timestamp < "2026-05-01T10:05:00")"#;
const LNAV_EXITS: &str = "SELECT fn, site, outcome, count(*) AS n FROM lastwords_log WHERE kind = 'fn_exit' GROUP BY fn, site, outcome ORDER BY fn, site, outcome";
const LNAV_ENDINGS: &str = "SELECT log_opid AS pid, kind, exit_code, signal FROM lastwords_log WHERE kind IN ('panic', 'signal', 'fatal_signal', 'process_exit') ORDER BY log_time";
const LNAV_INVALID: &str =
    "SELECT count(*) AS n, sum(log_level = 'invalid') AS invalid FROM lastwords_log";
const DUCKDB_COUNTS: &str = "SELECT kind, site, count(*) AS n FROM read_json_auto('logs/ingester.jsonl', format = 'newline_delimited') GROUP BY ALL ORDER BY n DESC, kind, site;";

/// The log of the four runs, made once per test binary.
fn fixture() -> &'static Path {
    static LOG: OnceLock<PathBuf> = OnceLock::new();
    LOG.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools-fixture");
        // A leftover of an earlier run; the runs must start on an empty file.
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create the fixture dir");
        let log = dir.join("ingester.jsonl");
        let out = run("ingester", &["--scenario", "killed"], &log);
        assert_eq!(out.signal(), Some(libc::SIGKILL), "{out:?}");
        for scenario in ["loop-bug", "task-panic"] {
            let out = run("ingester", &["--scenario", scenario], &log);
            assert_eq!(out.code(), Some(1), "{scenario}: {out:?}");
        }
        let mut healthy = spawn("ingester", &["--scenario", "healthy"], &log, &[]);
        healthy.wait_for_line("ready");
        std::thread::sleep(Duration::from_millis(200));
        healthy.signal(libc::SIGTERM);
        let out = healthy.wait();
        assert_eq!(out.code(), Some(0), "healthy: {out:?}");
        // A record cut by the kill would make `jq -s` refuse the file; the
        // recipes' tests need every line whole.
        records(&log, false);
        log
    })
}

fn last_name(v: &Value) -> String {
    v.as_str()
        .and_then(|s| s.rsplit("::").next())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn every_tested_recipe_is_in_the_doc_verbatim() {
    let doc = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/reading-the-log.md"),
    )
    .expect("docs/reading-the-log.md");
    for jq_filter in [
        RUNS_ENDED,
        PREVIOUS_RUN,
        ERROR_EXITS,
        KILLED_CRUMBS,
        PANIC_CRUMBS,
        BETWEEN,
    ] {
        assert!(
            doc.contains(&format!("'{jq_filter}' logs/ingester.jsonl")),
            "not in the doc: {jq_filter}"
        );
    }
    for sql in [LNAV_EXITS, LNAV_ENDINGS, LNAV_INVALID] {
        assert!(
            doc.contains(&format!(
                "lnav -N -n -c \";{sql}\" -c ':write-csv-to -' logs/ingester.jsonl"
            )),
            "not in the doc: {sql}"
        );
    }
    assert!(
        doc.contains(DUCKDB_COUNTS),
        "not in the doc: {DUCKDB_COUNTS}"
    );
}

#[test]
fn jq_says_how_each_run_ended() {
    let runs = jq_slurp(&format!("[{RUNS_ENDED}]"), fixture());
    let summary: Vec<Value> = runs
        .as_array()
        .expect("an array")
        .iter()
        .map(|r| json!([r["exit_code"], r["signal"], r["panics"], r["final_record"]]))
        .collect();
    assert_eq!(
        summary,
        [
            json!([null, null, 0, false]),  // killed: no final record
            json!([1, null, 0, true]),      // loop-bug
            json!([1, null, 1, true]),      // task-panic
            json!([0, "SIGTERM", 0, true]), // healthy, after SIGTERM
        ],
        "{runs}"
    );
}

#[test]
fn jq_each_start_reports_the_previous_run() {
    let out = jq(&["-c", PREVIOUS_RUN], fixture());
    let ended: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("jq prints JSON"))
        .map(|v| json!([v["previous"]["ended"], v["previous"]["exit_code"]]))
        .collect();
    assert_eq!(
        ended,
        [
            json!([null, null]),
            json!(["no_final_record", null]),
            json!(["exit", 1]),
            json!(["exit", 1]),
        ],
        "{out}"
    );
}

#[test]
fn jq_lists_the_error_exits() {
    let out = jq(&["-c", ERROR_EXITS], fixture());
    let exits: Vec<(String, Value, Value)> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("jq prints JSON"))
        .map(|v| (last_name(&v["fn"]), v["site"].clone(), v["outcome"].clone()))
        .collect();
    assert_eq!(
        exits,
        [
            ("run_backfill".to_owned(), json!("return"), json!("ok")),
            ("run_labeler".to_owned(), json!("unwind"), json!("panic")),
        ],
        "{out}"
    );
}

#[test]
fn jq_shows_the_last_breadcrumbs_before_each_death() {
    let killed = jq(&["-c", KILLED_CRUMBS], fixture());
    let killed: Value = serde_json::from_str(killed.trim()).expect("one line");
    let crumbs = killed["last_breadcrumbs"].as_array().expect("breadcrumbs");
    assert_eq!(
        crumbs.last(),
        Some(&json!("about to be killed with SIGKILL")),
        "{killed}"
    );
    let panic = jq(&["-c", PANIC_CRUMBS], fixture());
    let panic: Value = serde_json::from_str(panic.trim()).expect("one line");
    assert!(
        panic["breadcrumbs"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("entering select with all three tasks"))),
        "{panic}"
    );
}

#[test]
fn jq_selects_records_between_two_times() {
    let all = records(fixture(), false);
    // From the second run's start (included) to the third run's start
    // (excluded): exactly the second run's records.
    let starts: Vec<&Value> = all
        .iter()
        .filter(|r| r["kind"] == "process_start")
        .collect();
    let (from, to) = (
        starts[1]["timestamp"].as_str().unwrap(),
        starts[2]["timestamp"].as_str().unwrap(),
    );
    let filter = BETWEEN
        .replace("2026-05-01T10:00:00", from)
        .replace("2026-05-01T10:05:00", to);
    let out = jq(&["-c", &filter], fixture());
    let run_id = &starts[1]["run_id"];
    let expected = all.iter().filter(|r| &r["run_id"] == run_id).count();
    assert_eq!(out.lines().count(), expected, "{out}");
}

#[test]
fn lnav_parses_every_line_and_counts_what_jq_counts() {
    let jq_count = jq_slurp("length", fixture());
    let rows = lnav_csv(LNAV_INVALID, fixture());
    assert_eq!(
        rows,
        [vec!["n", "invalid"], vec![&jq_count.to_string(), "0"]]
    );
}

#[test]
fn lnav_groups_the_exits_as_jq_does() {
    let rows = lnav_csv(LNAV_EXITS, fixture());
    let from_jq = jq_slurp(
        r#"[.[] | select(.kind == "fn_exit")] | group_by([.fn, .site, .outcome]) | map([.[0].fn, .[0].site, .[0].outcome, (length | tostring)])"#,
        fixture(),
    );
    let from_jq: Vec<Vec<String>> = serde_json::from_value(from_jq).expect("rows of strings");
    assert_eq!(rows[0], ["fn", "site", "outcome", "n"]);
    assert_eq!(rows[1..], from_jq[..], "lnav vs jq");
    assert!(!from_jq.is_empty(), "the runs left fn_exit records");
}

#[test]
fn lnav_says_how_each_process_ended() {
    let rows = lnav_csv(LNAV_ENDINGS, fixture());
    let ends: Vec<Vec<&str>> = rows[1..]
        .iter()
        .map(|r| r[1..].iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        ends,
        [
            vec!["process_exit", "1", "<NULL>"],
            vec!["panic", "<NULL>", "<NULL>"],
            vec!["process_exit", "1", "<NULL>"],
            vec!["signal", "<NULL>", "SIGTERM"],
            vec!["process_exit", "0", "<NULL>"],
        ],
        "{rows:?}"
    );
    // The pid is lnav's operation id: one per run that wrote an ending.
    let pids: std::collections::BTreeSet<&str> = rows[1..].iter().map(|r| r[0].as_str()).collect();
    assert_eq!(pids.len(), 3, "{rows:?}");
}

#[test]
fn lnav_format_file_declares_the_schema_keys() {
    let text = std::fs::read_to_string(scenario_run::lnav_format_file()).expect("the format file");
    let format: Value = serde_json::from_str(&text).expect("the format file is JSON");
    let f = &format["lastwords_log"];
    assert_eq!(f["json"], true);
    assert_eq!(f["timestamp-field"], "timestamp");
    assert_eq!(f["level-field"], "level");
    assert_eq!(f["body-field"], "message");
    assert_eq!(f["opid-field"], "pid");
    for key in [
        "kind",
        "fn",
        "site",
        "line",
        "outcome",
        "error",
        "location",
        "signal",
        "exit_code",
        "previous_run",
    ] {
        assert!(f["value"].get(key).is_some(), "the format declares {key}");
    }
}

/// The Python interpreter for the DuckDB recipe: `$LASTWORDS_TEST_PYTHON`,
/// else `python3`. Fails the test loudly when it cannot import DuckDB.
fn python_with_duckdb() -> String {
    let python = std::env::var("LASTWORDS_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let check = Command::new(&python).args(["-c", "import duckdb"]).output();
    match check {
        Ok(out) if out.status.success() => python,
        Ok(out) => panic!(
            "DuckDB's Python module is needed to test the DuckDB recipe, and `{python}` cannot \
             import it: `pip install duckdb`, or set LASTWORDS_TEST_PYTHON to a Python that has \
             it (scripts/test.sh does): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "`{python}` is needed to test the DuckDB recipe ({e}): install Python 3 and \
             `pip install duckdb`, or set LASTWORDS_TEST_PYTHON"
        ),
    }
}

#[test]
fn duckdb_counts_by_kind_and_site() {
    let python = python_with_duckdb();
    // The recipe names logs/ingester.jsonl: run it where that path exists.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools-duckdb");
    std::fs::create_dir_all(dir.join("logs")).expect("create the logs dir");
    std::fs::copy(fixture(), dir.join("logs/ingester.jsonl")).expect("copy the log");
    let script =
        format!("import duckdb\nfor row in duckdb.sql({DUCKDB_COUNTS:?}).fetchall(): print(row)");
    let out = Command::new(&python)
        .arg("-c")
        .arg(&script)
        .current_dir(&dir)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "DuckDB failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let duck_total: u64 = stdout
        .lines()
        .filter_map(|l| {
            l.trim_end_matches(')')
                .rsplit(", ")
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    assert_eq!(json!(duck_total), jq_slurp("length", fixture()), "{stdout}");
    assert!(stdout.contains("'fn_exit', 'unwind', 1"), "{stdout}");
}
