//! A sync engine whose backfill "returned successfully with 0 results":
//! no error, no panic, nothing to log. `#[exit_path(ret)]` records the
//! returned value, so the silent empty success is in the log with the line
//! that produced it.
//!
//! ```sh
//! cargo run --example backfill
//! jq -c 'select(.kind == "fn_exit") | {fn, site, line, outcome, value}' logs/backfill.jsonl
//! ```
//!
//! The log goes to `$LASTWORDS_PATH`, else `logs/backfill.jsonl`.

use std::fmt;
use std::process::ExitCode;

/// A commit on the remote, with its time in milliseconds since the epoch.
#[derive(Clone, Debug)]
struct Commit {
    id: u32,
    at_ms: u64,
}

/// Where the sync engine resumes: seconds since the epoch.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    since_secs: u64,
}

#[derive(Debug)]
struct SyncError(String);

impl fmt::Display for SyncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SyncError {}

/// The remote repository: a page of commits newer than a time in
/// milliseconds.
struct Remote {
    commits: Vec<Commit>,
}

impl Remote {
    fn list_since_ms(&self, since_ms: u64) -> Result<Vec<Commit>, SyncError> {
        Ok(self
            .commits
            .iter()
            .filter(|c| c.at_ms > since_ms)
            .cloned()
            .collect())
    }
}

/// Fetches the commits made since the cursor. The bug: the cursor is in
/// seconds and the remote wants milliseconds, but the seconds are passed
/// scaled the wrong way, so every commit looks old and the result is empty.
#[lastwords::exit_path(ret)]
fn backfill(remote: &Remote, cursor: Cursor) -> Result<Vec<Commit>, SyncError> {
    let since_ms = cursor.since_secs * 1_000_000;
    let commits = remote.list_since_ms(since_ms)?;
    Ok(commits)
}

fn main() -> ExitCode {
    if let Err(e) = lastwords::init().install() {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let start_secs = 1_700_000_000;
    let remote = Remote {
        commits: (0..5)
            .map(|i| Commit {
                id: i,
                at_ms: (start_secs + 60 * u64::from(i)) * 1_000,
            })
            .collect(),
    };
    let cursor = Cursor {
        since_secs: start_secs - 3600,
    };
    match backfill(&remote, cursor) {
        Ok(found) => {
            let ids: Vec<u32> = found.iter().map(|c| c.id).collect();
            println!("backfill succeeded with {} commits {ids:?}", found.len());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backfill failed: {e}");
            ExitCode::FAILURE
        }
    }
}
