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
const EXIT_COUNTS: &str = r#"select(.kind == "process_start" and .previous_run.exit_counts != null) | {pid: .previous_run.pid, ended: .previous_run.ended, exits: (.previous_run.exit_counts | map("\(.fn | split("::") | last) \(.site):\(.line) ×\(.n)"))}"#;
const IN_FLIGHT: &str = r#"select(.kind == "process_start" and (.previous_run.in_flight // []) != []) | {pid: .previous_run.pid, ended: .previous_run.ended, in_flight: .previous_run.in_flight}"#;
const STUCK: &str =
    r#"select(.kind == "stuck") | {timestamp, pid, fn, state, in_flight, oldest_age_ms}"#;
const BETWEEN: &str =
    r#"select(.timestamp >= "2026-05-01T10:00:00" and .timestamp < "2026-05-01T10:05:00")"#;
const LNAV_EXITS: &str = "SELECT fn, site, outcome, count(*) AS n FROM lastwords_log WHERE kind = 'fn_exit' GROUP BY fn, site, outcome ORDER BY fn, site, outcome";
const LNAV_ENDINGS: &str = "SELECT log_opid AS pid, kind, exit_code, signal FROM lastwords_log WHERE kind IN ('panic', 'signal', 'fatal_signal', 'process_exit') ORDER BY log_time, seq";
const LNAV_INVALID: &str =
    "SELECT count(*) AS n, sum(log_level = 'invalid') AS invalid FROM lastwords_log";
const LAST_RECORDS: &str = r#"(map(select(.kind == "process_start" and .previous_run.ended != null and .previous_run.ended != "exit" and .previous_run.ended != "still_running")) | last | .previous_run.run_id) as $dead | map(select(.run_id == $dead and .kind != "process_start")) | sort_by(.timestamp) | .[-20:] | .[] | {timestamp, level, message, recovered}"#;
const LNAV_LAST_RECORDS: &str = "SELECT timestamp, log_level, log_body, recovered FROM (SELECT jget(log_raw_text, '/timestamp') AS timestamp, log_level, log_body, recovered, seq FROM lastwords_log WHERE run_id = (SELECT jget(previous_run, '/run_id') FROM lastwords_log WHERE kind = 'process_start' AND jget(previous_run, '/ended') NOT IN ('exit', 'still_running') ORDER BY log_time DESC LIMIT 1) AND kind != 'process_start' ORDER BY timestamp DESC, seq DESC LIMIT 20) ORDER BY timestamp, seq";
const DUCKDB_LAST_RECORDS: &str = "SELECT timestamp, level, message, recovered FROM (SELECT * FROM read_json_auto('logs/ingester.jsonl', format = 'newline_delimited') WHERE run_id = (SELECT previous_run.run_id FROM read_json_auto('logs/ingester.jsonl', format = 'newline_delimited') WHERE kind = 'process_start' AND previous_run.ended NOT IN ('exit', 'still_running') ORDER BY timestamp DESC LIMIT 1) AND kind != 'process_start' ORDER BY timestamp DESC, seq DESC LIMIT 20) ORDER BY timestamp, seq;";
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
        LAST_RECORDS,
        EXIT_COUNTS,
        IN_FLIGHT,
        STUCK,
    ] {
        assert!(
            doc.contains(&format!("'{jq_filter}' logs/ingester.jsonl")),
            "not in the doc: {jq_filter}"
        );
    }
    for sql in [LNAV_EXITS, LNAV_ENDINGS, LNAV_INVALID, LNAV_LAST_RECORDS] {
        assert!(
            doc.contains(&format!(
                "lnav -N -n -c \";{sql}\" -c ':write-csv-to -' logs/ingester.jsonl"
            )),
            "not in the doc: {sql}"
        );
    }
    for sql in [
        DUCKDB_COUNTS,
        DUCKDB_LAST_RECORDS,
        DUCKDB_FLEET_ENDINGS,
        DUCKDB_FLEET_ERROR_SITES,
        DUCKDB_FLEET_KILLED,
    ] {
        assert!(doc.contains(sql), "not in the doc: {sql}");
    }
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

/// One CSV line of lnav's, split into fields (a field with a comma is
/// quoted, with `""` for a quote).
fn csv_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                fields.last_mut().unwrap().push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => fields.push(String::new()),
            c => fields.last_mut().unwrap().push(c),
        }
    }
    fields
}

/// The last records of the run that died before the second start (the
/// killed one), as the jq recipe lists them: `(message, recovered)`, oldest
/// first, with their timestamps.
fn last_records_from_jq() -> Vec<(String, String, bool)> {
    let out = jq(&["-s", "-c", LAST_RECORDS], fixture());
    let rows: Vec<(String, String, bool)> = out
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("jq prints JSON"))
        .map(|v| {
            (
                v["timestamp"].as_str().unwrap().to_owned(),
                v["message"].as_str().unwrap().to_owned(),
                v["recovered"] == true,
            )
        })
        .collect();
    // The killed run's debug records, which only its flight recorder kept,
    // just before the breadcrumb it left as it was killed.
    let n = rows.len();
    assert!(n > 6, "{out}");
    assert!(rows[n - 6..n - 1]
        .iter()
        .all(|(_, m, recovered)| *recovered && m == "buffering a batch in memory"));
    assert_eq!(rows[n - 1].1, "about to be killed with SIGKILL", "{out}");
    assert_eq!(rows.iter().filter(|r| r.2).count(), 5, "{out}");
    rows
}

#[test]
fn lnav_shows_the_last_records_before_the_death_as_jq_does() {
    let want = last_records_from_jq();
    let rows = lnav_csv(LNAV_LAST_RECORDS, fixture());
    // `lnav_csv` splits on every comma; a message may hold one.
    let rows: Vec<Vec<String>> = rows.iter().map(|r| csv_fields(&r.join(","))).collect();
    assert_eq!(rows[0], ["timestamp", "log_level", "log_body", "recovered"]);
    let got: Vec<(String, String, bool)> = rows[1..]
        .iter()
        .map(|r| (r[0].clone(), r[2].clone(), r[3] == "1"))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn duckdb_shows_the_last_records_before_the_death_as_jq_does() {
    let want: Vec<(String, bool)> = last_records_from_jq()
        .into_iter()
        .map(|(_, message, recovered)| (message, recovered))
        .collect();
    let python = python_with_duckdb();
    // The recipe names logs/ingester.jsonl: run it where that path exists.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools-duckdb-last");
    std::fs::create_dir_all(dir.join("logs")).expect("create the logs dir");
    std::fs::copy(fixture(), dir.join("logs/ingester.jsonl")).expect("copy the log");
    let got: Vec<(String, bool)> = duckdb_rows(&python, &dir, DUCKDB_LAST_RECORDS)
        .iter()
        .map(|r| (r[2].as_str().unwrap().to_owned(), r[3] == true))
        .collect();
    assert_eq!(got, want);
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
        "recovered",
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

const DUCKDB_FLEET_ENDINGS: &str = "SELECT host, pid, started, CASE last_kind WHEN 'process_exit' THEN 'exit' WHEN 'signal' THEN 'signal' WHEN 'fatal_signal' THEN 'fatal_signal' WHEN 'panic' THEN 'panic' ELSE 'no_final_record' END AS ended, exit_code, signal FROM (SELECT regexp_extract(filename, '([^/]+)/[^/]+$', 1) AS host, run_id, pid, min(timestamp) AS started, arg_max(kind, seq) AS last_kind, arg_max(exit_code, seq) AS exit_code, arg_max(signal, seq) AS signal FROM read_json_auto('fleet/*/*.jsonl', format = 'newline_delimited', filename = true, union_by_name = true, ignore_errors = true) GROUP BY ALL) ORDER BY host, started;";
const DUCKDB_FLEET_ERROR_SITES: &str = "SELECT fn, site, line, outcome, count(*) AS n, count(DISTINCT regexp_extract(filename, '([^/]+)/[^/]+$', 1)) AS hosts FROM read_json_auto('fleet/*/*.jsonl', format = 'newline_delimited', filename = true, union_by_name = true, ignore_errors = true) WHERE kind = 'fn_exit' AND (outcome IN ('err', 'panic') OR unexpected) GROUP BY ALL ORDER BY n DESC, fn, line LIMIT 10;";
const DUCKDB_FLEET_KILLED: &str = "SELECT regexp_extract(filename, '([^/]+)/[^/]+$', 1) AS host, previous_run.pid AS pid, previous_run.last_breadcrumbs[-1].name AS last_breadcrumb FROM read_json_auto('fleet/*/*.jsonl', format = 'newline_delimited', filename = true, union_by_name = true, ignore_errors = true) WHERE kind = 'process_start' AND previous_run.ended = 'no_final_record' ORDER BY host, timestamp;";

/// Runs one DuckDB query from Python in `dir`; each row as a JSON array.
fn duckdb_rows(python: &str, dir: &Path, sql: &str) -> Vec<Value> {
    let script = format!(
        "import duckdb, json\nfor row in duckdb.sql({sql:?}).fetchall(): print(json.dumps(row, default=str))"
    );
    let out = Command::new(python)
        .arg("-c")
        .arg(&script)
        .current_dir(dir)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "DuckDB failed on {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Two hosts, each with a current and a rotated file holding three runs
/// of the ingester between them, run in this order (oldest first):
///
/// - host-a: `ingester.2026-11-30.jsonl`: task-panic (exit 1);
///   `ingester.jsonl`: killed (SIGKILL), then loop-bug (exit 1), whose start
///   reports the kill;
/// - host-b: `ingester.2026-11-30.jsonl`: loop-bug (exit 1);
///   `ingester.jsonl`: healthy (SIGTERM, graceful exit 0), then killed.
fn fleet() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools-fleet");
    // A leftover of an earlier run; the runs must start on empty files.
    let _ = std::fs::remove_dir_all(&dir);
    for host in ["host-a", "host-b"] {
        std::fs::create_dir_all(dir.join("fleet").join(host)).expect("create the host dir");
    }
    let file = |host: &str, name: &str| dir.join("fleet").join(host).join(name);
    let exits_1 = |scenario: &str, log: &Path| {
        let out = run("ingester", &["--scenario", scenario], log);
        assert_eq!(out.code(), Some(1), "{scenario}: {out:?}");
    };
    let killed = |log: &Path| {
        let out = run("ingester", &["--scenario", "killed"], log);
        assert_eq!(out.signal(), Some(libc::SIGKILL), "{out:?}");
    };
    exits_1("task-panic", &file("host-a", "ingester.2026-11-30.jsonl"));
    killed(&file("host-a", "ingester.jsonl"));
    exits_1("loop-bug", &file("host-a", "ingester.jsonl"));
    exits_1("loop-bug", &file("host-b", "ingester.2026-11-30.jsonl"));
    let mut healthy = spawn(
        "ingester",
        &["--scenario", "healthy"],
        &file("host-b", "ingester.jsonl"),
        &[],
    );
    healthy.wait_for_line("ready");
    std::thread::sleep(Duration::from_millis(200));
    healthy.signal(libc::SIGTERM);
    let out = healthy.wait();
    assert_eq!(out.code(), Some(0), "healthy: {out:?}");
    killed(&file("host-b", "ingester.jsonl"));
    dir
}

#[test]
fn duckdb_reads_the_fleet_at_once() {
    let python = python_with_duckdb();
    let dir = fleet();
    let all: Vec<Value> = ["host-a", "host-b"]
        .iter()
        .flat_map(|host| {
            ["ingester.2026-11-30.jsonl", "ingester.jsonl"]
                .map(|name| dir.join("fleet").join(host).join(name))
        })
        .flat_map(|file| records(&file, true))
        .collect();

    // How each run ended, per host, oldest first.
    let endings = duckdb_rows(&python, &dir, DUCKDB_FLEET_ENDINGS);
    let summary: Vec<(String, String, Value)> = endings
        .iter()
        .map(|r| {
            (
                r[0].as_str().unwrap().to_owned(),
                r[3].as_str().unwrap().to_owned(),
                r[4].clone(),
            )
        })
        .collect();
    let exit = |host: &str, code: i64| (host.to_owned(), "exit".to_owned(), json!(code));
    let dead = |host: &str| (host.to_owned(), "no_final_record".to_owned(), Value::Null);
    assert_eq!(
        summary,
        vec![
            exit("host-a", 1),
            dead("host-a"),
            exit("host-a", 1),
            exit("host-b", 1),
            exit("host-b", 0),
            dead("host-b")
        ],
        "{endings:#?}"
    );
    let runs: std::collections::BTreeSet<&str> =
        all.iter().filter_map(|r| r["run_id"].as_str()).collect();
    assert_eq!(runs.len(), endings.len(), "one row per run");

    // The top error exit sites: the same counts as over the parsed records.
    let sites = duckdb_rows(&python, &dir, DUCKDB_FLEET_ERROR_SITES);
    assert!(!sites.is_empty());
    for site in &sites {
        let matching = all.iter().filter(|r| {
            r["kind"] == "fn_exit"
                && r["fn"] == site[0]
                && r["site"] == site[1]
                && r["line"] == site[2]
                && r["outcome"] == site[3]
        });
        assert_eq!(json!(matching.count()), site[4], "{site}");
    }
    let unexpected_returns: u64 = sites
        .iter()
        .filter(|s| s[1] == "return")
        .map(|s| s[4].as_u64().unwrap())
        .sum();
    assert!(
        unexpected_returns >= 2,
        "the loop-bug's return, on both hosts: {sites:#?}"
    );
    assert!(
        sites.iter().any(|s| s[1] == "return" && s[5] == 2),
        "the same return site on both hosts: {sites:#?}"
    );

    // The kill that a later start found: host-a's, with its last breadcrumb.
    let killed = duckdb_rows(&python, &dir, DUCKDB_FLEET_KILLED);
    assert_eq!(killed.len(), 1, "{killed:#?}");
    assert_eq!(killed[0][0], "host-a");
    let killed_pid = all
        .iter()
        .find(|r| r["kind"] == "process_start" && r["previous_run"]["ended"] == "no_final_record")
        .map(|r| r["previous_run"]["pid"].clone());
    assert_eq!(Some(killed[0][1].clone()), killed_pid);
    assert!(killed[0][2].is_string(), "a last breadcrumb: {killed:#?}");
}

#[test]
fn jq_lists_the_previous_runs_exit_counts_and_calls_in_flight() {
    let out = jq(&["-c", EXIT_COUNTS], fixture());
    let starts: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("jq prints JSON"))
        .collect();
    // Every start after the first reports on a run with the recorder on.
    assert_eq!(starts.len(), 3, "{out}");
    // The killed run's tasks never left; loop-bug's backfill returned and
    // the other two tasks were cancelled; task-panic's labeler unwound.
    let exits: Vec<&Value> = starts.iter().map(|s| &s["exits"]).collect();
    assert_eq!(exits[0], &json!([]), "{out}");
    for (run, want) in [(1, "run_backfill return:"), (2, "run_labeler unwind:")] {
        let list = exits[run].as_array().expect("exits");
        assert!(
            list.iter()
                .any(|e| e.as_str().is_some_and(|e| e.starts_with(want))),
            "{out}"
        );
        for e in list {
            let (_, n) = e
                .as_str()
                .and_then(|e| e.rsplit_once('×'))
                .expect("fn site:line ×n");
            assert_eq!(n, "1", "{out}");
        }
    }
    // The killed run's tasks were all still running.
    let out = jq(&["-c", IN_FLIGHT], fixture());
    let killed: Value = serde_json::from_str(out.lines().next().expect("a line")).unwrap();
    assert_eq!(killed["ended"], "no_final_record", "{out}");
    let in_flight = killed["in_flight"].as_array().expect("in_flight");
    let mut names: Vec<(String, Value)> = in_flight
        .iter()
        .map(|f| (last_name(&f["fn"]), f["count"].clone()))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        names,
        [
            ("run_backfill".to_owned(), json!(1)),
            ("run_firehose".to_owned(), json!(1)),
            ("run_labeler".to_owned(), json!(1)),
        ],
        "{out}"
    );
    assert_eq!(
        out.lines().count(),
        1,
        "only the killed run had calls inside"
    );
}

#[test]
fn jq_shows_the_stuck_records() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("tools-stuck");
    // A leftover of an earlier run.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the dir");
    let log = dir.join("child.jsonl");
    let mut child = spawn(
        "in_flight_child",
        &["block", "2", "1"],
        &log,
        &[("LASTWORDS_STUCK_MS", "500")],
    );
    child.wait_for_line("ready");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stuck = loop {
        let out = jq(&["-c", STUCK], &log);
        if out.lines().count() >= 2 {
            break out;
        }
        assert!(std::time::Instant::now() < deadline, "no stuck records");
        std::thread::sleep(Duration::from_millis(100));
    };
    child.signal(libc::SIGKILL);
    child.wait();
    let mut got: Vec<(String, Value, Value)> = stuck
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("jq prints JSON"))
        .map(|v| {
            assert!(v["oldest_age_ms"].as_u64().is_some_and(|a| a >= 500), "{v}");
            (
                last_name(&v["fn"]),
                v["state"].clone(),
                v["in_flight"].clone(),
            )
        })
        .collect();
    got.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        got,
        [
            ("relocate".to_owned(), json!("stuck"), json!(2)),
            ("relocate_async".to_owned(), json!("stuck"), json!(1)),
        ],
        "{stuck}"
    );
}
