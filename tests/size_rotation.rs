//! Size rotation end to end: the `size_rotating` example runs as a child
//! process with a small `max_file_bytes`, alone or with time rotation.
//!
//! Steps, for each test: run the child into a fresh directory; list the
//! files it left, ordered as the runtime orders them (period, then number
//! as a number); parse every line of every file; check the files' names and
//! sizes, that no record is split or lost and that `seq` runs on across
//! files. The kill test runs the child twice: the first run dies of
//! SIGKILL, and the second run's `process_start`, read from the newest
//! file, says so.

#[path = "support/scenario_run.rs"]
mod scenario_run;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use scenario_run::{records, run, TempDir};
use serde_json::Value;

/// A rotated file: its period's date (empty without time rotation), its
/// number and its path.
#[derive(Debug)]
struct Rotated {
    date: String,
    index: u64,
    path: PathBuf,
}

/// The `svc.[DATE.]N.jsonl` files in `dir`, oldest first. Fails on any
/// other `svc.*.jsonl` name: size rotation writes nothing else.
fn rotated(dir: &Path) -> Vec<Rotated> {
    let mut files: Vec<Rotated> = std::fs::read_dir(dir)
        .expect("read the log dir")
        .map(|e| e.expect("a dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .map(|path| {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            let middle = name
                .strip_prefix("svc.")
                .and_then(|n| n.strip_suffix(".jsonl"))
                .unwrap_or_else(|| panic!("unexpected file {name}"));
            let (date, index) = middle.rsplit_once('.').unwrap_or(("", middle));
            let index = index
                .parse()
                .unwrap_or_else(|_| panic!("{name}: no file number"));
            Rotated {
                date: date.to_owned(),
                index,
                path,
            }
        })
        .collect();
    files.sort_by(|a, b| (&a.date, a.index).cmp(&(&b.date, b.index)));
    files
}

/// The path the example printed as its log.
fn printed_path(stdout: &str) -> PathBuf {
    let path = stdout
        .lines()
        .find_map(|l| l.strip_prefix("the log is "))
        .unwrap_or_else(|| panic!("no log path printed; stdout: {stdout}"));
    PathBuf::from(path)
}

fn seqs(records: &[Value]) -> Vec<u64> {
    records.iter().map(|r| r["seq"].as_u64().unwrap()).collect()
}

fn ns(records: &[Value]) -> Vec<u64> {
    records.iter().filter_map(|r| r["n"].as_u64()).collect()
}

const MAX: u64 = 2_000;

#[test]
fn every_file_stays_within_the_limit_and_no_record_is_split_or_lost() {
    let dir = TempDir::new("size-rotation");
    let base = dir.join("svc.jsonl");
    // Record 150 is larger than a whole file.
    let out = run(
        "size_rotating",
        &["2000", "300", "never", "ok", "0", "150"],
        &base,
    );
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(!base.exists(), "nothing is written to the unnumbered name");

    let files = rotated(dir.path());
    assert!(
        files.len() > 11,
        "enough files for 10 to follow 9: {files:?}"
    );
    assert_eq!(
        files.iter().map(|f| f.index).collect::<Vec<_>>(),
        (0..files.len() as u64).collect::<Vec<_>>(),
        "numbered from 0 with no gap"
    );
    let printed = printed_path(&out.stdout);

    let mut all = Vec::new();
    for file in &files {
        // Every line a whole record: `records` fails on any other line.
        let recs = records(&file.path, false);
        if recs.iter().any(|r| r["n"] == 300) {
            assert_eq!(printed, file.path, "Lastwords::path names the current file");
        }
        assert!(!recs.is_empty(), "{}: empty", file.path.display());
        let len = std::fs::metadata(&file.path).unwrap().len();
        if recs.iter().any(|r| r["n"] == 150) {
            assert_eq!(recs.len(), 1, "the large record is alone in its file");
            assert!(len > MAX);
        } else {
            assert!(len <= MAX, "{}: {len} bytes", file.path.display());
            // Full: the next file's first record did not fit.
            if file.index + 1 < files.len() as u64 {
                let next_file = &files[file.index as usize + 1].path;
                let next = &records(next_file, false)[0];
                let text = std::fs::read_to_string(next_file).unwrap();
                let next_len = text.find('\n').unwrap() as u64 + 1;
                assert!(
                    len + next_len > MAX || next["n"] == 150,
                    "{}: {len} bytes, and a {next_len}-byte record would have fitted",
                    file.path.display()
                );
            }
        }
        all.extend(recs);
    }
    // In file order, seq runs 1, 2, 3, … and every record written is there.
    assert_eq!(seqs(&all), (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(ns(&all), (1..=300).collect::<Vec<_>>());
    assert_eq!(all[0]["kind"], "process_start");
    assert_eq!(all.last().unwrap()["kind"], "process_exit");
    assert_eq!(all.last().unwrap()["exit_code"], 0);
}

#[test]
fn max_log_files_keeps_the_newest_numbers() {
    let dir = TempDir::new("size-rotation-keep");
    let base = dir.join("svc.jsonl");
    let out = run("size_rotating", &["2000", "300", "never", "ok", "4"], &base);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let files = rotated(dir.path());
    assert_eq!(files.len(), 4, "{files:?}");
    let first = files[0].index;
    assert!(first > 10, "the oldest were deleted: {files:?}");
    assert_eq!(
        files.iter().map(|f| f.index).collect::<Vec<_>>(),
        (first..first + 4).collect::<Vec<_>>(),
        "the four highest numbers remain (10 is newer than 9)"
    );
    let kept: Vec<Value> = files.iter().flat_map(|f| records(&f.path, false)).collect();
    let seq = seqs(&kept);
    assert_eq!(
        seq,
        (seq[0]..seq[0] + kept.len() as u64).collect::<Vec<_>>(),
        "what remains is the run's contiguous end"
    );
    assert_eq!(kept.last().unwrap()["kind"], "process_exit");
    assert_eq!(ns(&kept).last(), Some(&300));
}

/// Sets every file's modification time to the same instant, so that only
/// the names can tell which file is the newest.
fn same_mtime(files: &[Rotated]) {
    let when = SystemTime::now() - std::time::Duration::from_secs(60);
    for f in files {
        std::fs::File::options()
            .append(true)
            .open(&f.path)
            .and_then(|file| file.set_modified(when))
            .expect("set the modification time");
    }
}

#[test]
fn after_a_sigkill_the_next_start_reports_from_the_newest_file() {
    let dir = TempDir::new("size-rotation-kill");
    let base = dir.join("svc.jsonl");
    let first = run("size_rotating", &["2000", "300", "never", "kill"], &base);
    assert_eq!(first.signal(), Some(libc::SIGKILL), "{first:?}");
    let files = rotated(dir.path());
    assert!(files.len() > 11, "{files:?}");
    let newest = files.last().unwrap();
    assert_eq!(printed_path(&first.stdout), newest.path);
    let first_run = records(&files[0].path, false)[0]["run_id"].clone();
    // Ordered by name, `svc.9.jsonl` would come after `svc.13.jsonl`.
    same_mtime(&files);

    let second = run("size_rotating", &["2000", "3", "never", "ok"], &base);
    assert_eq!(second.code(), Some(0), "{second:?}");
    let all: Vec<Value> = rotated(dir.path())
        .iter()
        .flat_map(|f| records(&f.path, true))
        .collect();
    let start = all
        .iter()
        .find(|r| r["kind"] == "process_start" && r["run_id"] != first_run)
        .expect("the second run's process_start");
    let previous = &start["previous_run"];
    assert_eq!(previous["run_id"], first_run, "{previous}");
    assert_eq!(previous["ended"], "no_final_record", "{previous}");
    let crumbs = previous["last_breadcrumbs"].to_string();
    assert!(crumbs.contains("about to commit the batch"), "{previous}");
    // The second run went on in the newest file (it had room) or the next.
    let second_file = printed_path(&second.stdout);
    let second_index = rotated(dir.path())
        .into_iter()
        .find(|f| f.path == second_file)
        .expect("the second run's file")
        .index;
    assert!(
        second_index >= newest.index,
        "{second_file:?} after {newest:?}"
    );
}

#[test]
fn with_minutely_rotation_files_are_named_for_the_minute_and_numbered() {
    let dir = TempDir::new("size-rotation-minutely");
    let base = dir.join("svc.jsonl");
    let out = run("size_rotating", &["2000", "150", "minutely", "ok"], &base);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let files = rotated(dir.path());
    assert!(files.len() > 3, "{files:?}");
    let mut all = Vec::new();
    let mut expected_index = 0;
    for (i, file) in files.iter().enumerate() {
        // `YYYY-MM-DD-HH-MM`, tracing-appender's minutely date.
        let d = file.date.as_bytes();
        assert!(
            d.len() == 16
                && d.iter().enumerate().all(|(i, b)| match i {
                    4 | 7 | 10 | 13 => *b == b'-',
                    _ => b.is_ascii_digit(),
                }),
            "{file:?}"
        );
        if i > 0 && files[i - 1].date != file.date {
            expected_index = 0; // a new minute begins at 0
        }
        assert_eq!(file.index, expected_index, "{files:?}");
        expected_index += 1;
        let recs = records(&file.path, false);
        assert!(std::fs::metadata(&file.path).unwrap().len() <= MAX);
        // The file's minute is that of its records (or, for a record made
        // in the last moment of a minute, the next one).
        let stamp = recs[0]["timestamp"].as_str().unwrap();
        let minute = format!("{}-{}-{}", &stamp[..10], &stamp[11..13], &stamp[14..16]);
        assert!(file.date >= minute, "{file:?} holds a record of {stamp}");
        all.extend(recs);
    }
    assert_eq!(seqs(&all), (1..=all.len() as u64).collect::<Vec<_>>());
    assert_eq!(ns(&all), (1..=150).collect::<Vec<_>>());
    assert_eq!(all.last().unwrap()["kind"], "process_exit");
}
