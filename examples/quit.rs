//! A terminal UI that quits with `std::process::exit(0)` while its log is
//! being written: with lastwords not one record is lost and the last line is
//! complete; through `tracing_appender::non_blocking` the tail is gone.
//!
//! ```sh
//! cargo run --example quit                           # lastwords: 0 lost
//! cargo run --example quit -- --writer non-blocking  # tracing_appender: some lost
//! ```
//!
//! Each run starts itself again as a child that writes `RECORDS` records as
//! fast as it can and then calls `std::process::exit(0)`, as a quit key
//! would; the parent then counts what reached the file and prints one line:
//! `<writer>: <n> of <RECORDS> records reached <path>; <k> lost; last line
//! complete|cut`. The lastwords log goes to `$LASTWORDS_PATH`, else
//! `logs/quit.jsonl`; the non-blocking one to `<same stem>.non-blocking.jsonl`
//! next to it (truncated on each run).

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// How many records the child writes before quitting.
const RECORDS: u64 = 20_000;
/// The message of every record the child writes, to count them.
const MESSAGE: &str = "frame rendered";

#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    Lastwords,
    NonBlocking,
}

impl Writer {
    fn name(self) -> &'static str {
        match self {
            Writer::Lastwords => "lastwords",
            Writer::NonBlocking => "non-blocking",
        }
    }
}

/// The UI's render loop: one record per frame, then the quit key.
fn render_then_quit() -> ! {
    for frame in 0..RECORDS {
        tracing::info!(frame, key = "j", "frame rendered");
    }
    lastwords::crumb!("quit key pressed");
    std::process::exit(0)
}

/// The child: sets up the chosen writer, renders, quits.
fn child(writer: Writer, non_blocking_path: &Path) -> io::Result<()> {
    match writer {
        Writer::Lastwords => {
            lastwords::init()
                .install()
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Writer::NonBlocking => {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(non_blocking_path)?;
            // The guard flushes the worker's queue when dropped, but
            // `process::exit` runs no destructors: that is the point.
            let (writer, _guard) = tracing_appender::non_blocking(file);
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_writer(writer)
                .init();
            render_then_quit();
        }
    }
    render_then_quit()
}

/// What reached the file: records of this child, and whether the last line
/// ends with `\n`.
fn count(path: &Path, writer: Writer, child_pid: u32) -> io::Result<(u64, bool)> {
    let text = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let complete = text.is_empty() || text.ends_with(b"\n");
    let mut delivered = 0;
    for line in text.split(|&b| b == b'\n') {
        let Ok(record) = serde_json::from_slice::<serde_json::Value>(line) else {
            continue;
        };
        let ours = match writer {
            Writer::Lastwords => record["pid"] == child_pid,
            Writer::NonBlocking => true,
        };
        if ours && record["message"] == MESSAGE {
            delivered += 1;
        }
    }
    Ok((delivered, complete))
}

/// The parent: runs the child, then reports.
fn parent(writer: Writer, non_blocking_path: &Path) -> io::Result<ExitCode> {
    let path = match writer {
        Writer::Lastwords => lastwords::init().resolved_path(),
        Writer::NonBlocking => {
            if let Some(dir) = non_blocking_path.parent() {
                fs::create_dir_all(dir)?;
            }
            // The count is per run, so start from an empty file.
            let _ = fs::remove_file(non_blocking_path);
            non_blocking_path.to_owned()
        }
    };
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--writer", writer.name(), "--child"])
        .spawn()?;
    let status = child.wait()?;
    if !status.success() {
        eprintln!("quit: the child failed: {status}");
        return Ok(ExitCode::FAILURE);
    }
    let (delivered, complete) = count(&path, writer, child.id())?;
    println!(
        "{}: {delivered} of {RECORDS} records reached {}; {} lost; last line {}",
        writer.name(),
        path.display(),
        RECORDS - delivered.min(RECORDS),
        if complete { "complete" } else { "cut" },
    );
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    let mut writer = Writer::Lastwords;
    let mut is_child = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().as_deref()) {
            ("--writer", Some("lastwords")) => writer = Writer::Lastwords,
            ("--writer", Some("non-blocking")) => writer = Writer::NonBlocking,
            ("--child", None) => is_child = true,
            _ => {
                eprintln!("usage: quit [--writer lastwords|non-blocking]");
                return ExitCode::from(2);
            }
        }
    }
    let lastwords_path = lastwords::init().resolved_path();
    let stem = lastwords_path
        .file_stem()
        .map_or_else(|| "quit".into(), |s| s.to_string_lossy().into_owned());
    let non_blocking_path: PathBuf =
        lastwords_path.with_file_name(format!("{stem}.non-blocking.jsonl"));

    let result = if is_child {
        child(writer, &non_blocking_path).map(|()| ExitCode::SUCCESS)
    } else {
        parent(writer, &non_blocking_path)
    };
    result.unwrap_or_else(|e| {
        eprintln!("quit: {e}");
        ExitCode::FAILURE
    })
}
