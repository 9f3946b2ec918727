//! Runs a crate's own test suite (unit, integration and doc tests) and reads
//! what cargo and libtest printed.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{fs, io};

use crate::fetch::cargo;

/// What one `cargo test` run showed.
#[derive(Default, Clone)]
pub struct Outcome {
    /// cargo exited with 0.
    pub success: bool,
    /// Tests passed in unit and integration test binaries.
    pub passed: u32,
    /// Doc tests passed.
    pub doc_passed: u32,
    /// Tests failed (all kinds).
    pub failed: u32,
    /// Tests ignored (all kinds).
    pub ignored: u32,
    /// Names of the failed tests.
    pub failed_tests: Vec<String>,
    /// Compile errors: the message line and its `-->` location.
    pub errors: Vec<String>,
    /// For each compile error, every `(file, line)` its snippets show, in
    /// order: the error's own line first, then macro invocations and notes.
    pub error_lines: Vec<Vec<(String, usize)>>,
    /// Warnings: the message line and `file:line` (the column moves when an
    /// attribute is inserted on the line, the line does not).
    pub warnings: BTreeSet<String>,
    /// How long the run took.
    pub elapsed: Duration,
}

/// Runs `cargo test --no-fail-fast` in `dir` with `target_dir` as the shared
/// target directory, keeping everything printed in `log`.
///
/// # Errors
///
/// cargo could not be started or the log not written or read.
pub fn cargo_test(dir: &Path, target_dir: &Path, args: &[&str], log: &Path) -> io::Result<Outcome> {
    let file = File::create(log)?;
    let start = Instant::now();
    let status = Command::new(cargo())
        .arg("test")
        .arg("--no-fail-fast")
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_TERM_COLOR", "never")
        // The crates must not see this workspace's settings through cargo's
        // own variables when the harness runs under `cargo run`.
        .env_remove("CARGO_MANIFEST_DIR")
        .env_remove("CARGO_PKG_NAME")
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .status()?;
    let mut outcome = parse(&fs::read_to_string(log)?);
    outcome.success = status.success();
    outcome.elapsed = start.elapsed();
    Ok(outcome)
}

/// Reads cargo's and libtest's output (stdout and stderr interleaved).
pub fn parse(log: &str) -> Outcome {
    let mut out = Outcome::default();
    let mut in_doctests = false;
    let lines: Vec<&str> = log.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("Doc-tests ") {
            in_doctests = true;
        } else if line.trim_start().starts_with("Running ") {
            in_doctests = false;
        } else if let Some(rest) = line.strip_prefix("test result: ") {
            let count = |what: &str| -> u32 {
                rest.split(';')
                    .find_map(|part| {
                        part.trim()
                            .trim_start_matches("ok. ")
                            .trim_start_matches("FAILED. ")
                            .strip_suffix(what)
                    })
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0)
            };
            if in_doctests {
                out.doc_passed += count(" passed");
            } else {
                out.passed += count(" passed");
            }
            out.failed += count(" failed");
            out.ignored += count(" ignored");
        } else if let Some(name) = line
            .strip_prefix("test ")
            .and_then(|l| l.strip_suffix(" ... FAILED"))
        {
            out.failed_tests.push(name.to_owned());
        } else if line.starts_with("error") && !is_summary(line) {
            out.errors.push(with_location(line, &lines[i + 1..], true));
            out.error_lines.push(snippet_lines(&lines[i + 1..]));
        } else if line.starts_with("warning") && !is_summary(line) {
            out.warnings
                .insert(with_location(line, &lines[i + 1..], false));
        }
    }
    out
}

/// cargo's closing lines, which repeat what the diagnostics said.
fn is_summary(line: &str) -> bool {
    [
        "error: could not compile",
        "error: test failed",
        "error: aborting due to",
        "error: doctest failed",
        "error: build failed",
        "error: 1 target failed",
        "warning: build failed",
    ]
    .iter()
    .any(|p| line.starts_with(p))
        || (line.starts_with("error: ") && line.contains(" targets failed"))
        || (line.starts_with("warning: `") && line.contains(" generated "))
        || line.starts_with("warning: unused manifest key")
}

/// The `(file, line)` of every source line a diagnostic quotes, up to the
/// next diagnostic: `--> file` and `::: file` name the file of the numbered
/// `NNN | code` lines that follow.
fn snippet_lines(next: &[&str]) -> Vec<(String, usize)> {
    let mut file = String::new();
    let mut found = Vec::new();
    for line in next
        .iter()
        .take_while(|l| !l.starts_with("error") && !l.starts_with("warning"))
    {
        let trimmed = line.trim_start();
        if let Some(loc) = trimmed
            .strip_prefix("--> ")
            .or_else(|| trimmed.strip_prefix("::: "))
        {
            file = loc.split(':').next().unwrap_or("").to_owned();
            continue;
        }
        if let Some((number, _)) = trimmed.split_once(" |") {
            if let Ok(n) = number.parse::<usize>() {
                found.push((file.clone(), n));
            }
        }
    }
    found
}

/// A diagnostic's first line followed by the location on the next
/// ` --> file:line:col` line; `column` keeps the column.
fn with_location(line: &str, next: &[&str], column: bool) -> String {
    let location = next
        .iter()
        .take(3)
        .find_map(|l| l.trim_start().strip_prefix("--> "))
        .map(|loc| {
            if column {
                loc.to_owned()
            } else {
                loc.rsplit_once(':')
                    .map_or(loc, |(file_line, _)| file_line)
                    .to_owned()
            }
        });
    match location {
        Some(loc) => format!("{line}  at {loc}"),
        None => line.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn counts_each_kind_of_test_and_reads_diagnostics() {
        let log = "\
warning: unused variable: `x`
 --> src/lib.rs:3:9
  |
warning: `c` (lib test) generated 1 warning
     Running unittests src/lib.rs (target/debug/deps/c-1)
test a ... ok
test b ... FAILED
test result: FAILED. 1 passed; 1 failed; 2 ignored; 0 measured; 0 filtered out; finished in 0.00s
     Running tests/t.rs (target/debug/deps/t-2)
test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
   Doc-tests c
test result: ok. 7 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
error[E0282]: type annotations needed
  --> tests/t.rs:10:5
   |
10 |     assert_eq!(v, vec![]);
error: could not compile `c` (test \"t\") due to 1 previous error
error: test failed, to rerun pass `--lib`
";
        let out = parse(log);
        assert_eq!(
            (out.passed, out.doc_passed, out.failed, out.ignored),
            (6, 7, 1, 3)
        );
        assert_eq!(out.failed_tests, ["b"]);
        assert_eq!(
            out.errors,
            ["error[E0282]: type annotations needed  at tests/t.rs:10:5"]
        );
        assert_eq!(
            out.warnings.into_iter().collect::<Vec<_>>(),
            ["warning: unused variable: `x`  at src/lib.rs:3"]
        );
    }
}
