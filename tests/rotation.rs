//! Time-based rotation end to end: the `rotating` example runs as a child
//! process, writes to the current period's file (named as tracing-appender
//! names it), and the next start finds how the previous run ended in the
//! newest file even after the period changed, and deletes the files beyond
//! `max_log_files`.

#[path = "support/scenario_run.rs"]
mod scenario_run;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use scenario_run::{records, run, TempDir};
use serde_json::Value;

/// The path the example printed as its log.
fn printed_path(stdout: &str) -> PathBuf {
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the log is "))
        .unwrap_or_else(|| panic!("no log path printed; stdout: {stdout}"));
    PathBuf::from(path)
}

/// The files in `dir`, by name.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read the log dir")
        .map(|e| e.expect("a dir entry").file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn set_mtime(path: &Path, age: Duration) {
    let file = std::fs::File::options()
        .append(true)
        .open(path)
        .expect("open to set its time");
    file.set_modified(SystemTime::now() - age)
        .expect("set the modification time");
}

#[test]
fn each_day_gets_its_own_file_and_the_next_start_reads_the_newest() {
    let dir = TempDir::new("rotation");
    let base = dir.join("svc.jsonl");

    // First run: killed with SIGKILL, as by the OOM killer.
    let first = run("rotating", &["daily", "kill"], &base);
    assert_eq!(first.signal(), Some(libc::SIGKILL), "{first:?}");
    let first_file = printed_path(&first.stdout);
    let first_records = records(&first_file, true);
    let day = first_records[0]["timestamp"].as_str().unwrap()[..10].to_owned();
    assert_eq!(
        first_file,
        dir.join(&format!("svc.{day}.jsonl")),
        "tracing-appender's daily name: prefix.YYYY-MM-DD.suffix"
    );
    assert!(!base.exists(), "nothing is written to the unrotated name");
    let first_run_id = first_records[0]["run_id"].clone();
    assert_eq!(
        first_records
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        (1..=first_records.len() as u64).collect::<Vec<_>>()
    );

    // The day changes: the first run's file becomes an older day's, and
    // older days' files pile up beyond what the example keeps (7).
    let yesterday = dir.join("svc.2020-01-09.jsonl");
    std::fs::rename(&first_file, &yesterday).unwrap();
    set_mtime(&yesterday, Duration::from_secs(3_600));
    for d in 1..=8 {
        let old = dir.join(&format!("svc.2020-01-0{d}.jsonl"));
        std::fs::write(&old, "{}\n").unwrap();
        set_mtime(&old, Duration::from_secs(86_400 * (10 - d)));
    }
    std::fs::write(dir.join("svc.jsonl.bak"), "not a rotated file\n").unwrap();

    // Second run: a clean exit, in today's file.
    let second = run("rotating", &["daily", "ok"], &base);
    assert_eq!(second.code(), Some(0), "{second:?}");
    let second_file = printed_path(&second.stdout);
    assert_eq!(second_file, dir.join(&format!("svc.{day}.jsonl")));
    let second_records = records(&second_file, false);
    // The first run's last records, recovered from its flight recorder,
    // come before the second run's start.
    let start = second_records
        .iter()
        .find(|r| r.get("recovered").is_none())
        .unwrap();
    assert_eq!(start["kind"], "process_start");
    let previous = &start["previous_run"];
    assert_eq!(previous["run_id"], first_run_id, "{previous}");
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    let crumbs: Vec<&str> = previous["last_breadcrumbs"]
        .as_array()
        .unwrap_or_else(|| panic!("no last_breadcrumbs: {previous}"))
        .iter()
        .filter_map(|c| c["message"].as_str().or(c["name"].as_str()))
        .collect();
    assert!(
        crumbs
            .iter()
            .any(|c| c.contains("about to commit the batch")),
        "{previous}"
    );
    assert_eq!(second_records.last().unwrap()["kind"], "process_exit");

    // Seven rotated files remain: today's and the six newest days before;
    // a file that only looks similar is left alone.
    let mut expected: Vec<String> = (4..=9)
        .map(|d| format!("svc.2020-01-0{d}.jsonl"))
        .chain([format!("svc.{day}.jsonl"), "svc.jsonl.bak".to_owned()])
        .chain(["svc.ring".to_owned()]) // the flight recorder's file
        .collect();
    expected.sort();
    assert_eq!(names(dir.path()), expected);
}

#[test]
fn the_current_file_is_named_for_the_hour() {
    let dir = TempDir::new("rotation-hourly");
    let base = dir.join("svc.jsonl");
    let out = run("rotating", &["hourly", "ok"], &base);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let file = printed_path(&out.stdout);
    let recs = records(&file, false);
    let first: &Value = &recs[0];
    let stamp = first["timestamp"].as_str().unwrap();
    // 2026-11-25T10:34:56.123456Z -> svc.2026-11-25-10.jsonl; the run may
    // straddle the hour, so the name is that of the first record's hour.
    let hour = format!("{}-{}", &stamp[..10], &stamp[11..13]);
    assert_eq!(file, dir.join(&format!("svc.{hour}.jsonl")));
    assert_eq!(recs.last().unwrap()["kind"], "process_exit");
}
