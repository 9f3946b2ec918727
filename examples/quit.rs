//! A terminal UI that quits with `std::process::exit(0)` while its log is
//! being written. Its JSON log went through a buffer flushed every 4,096
//! records, and `process::exit` runs no destructor, so the buffer's tail
//! never reached the file: up to 4,096 records lost on every quit, the last
//! line cut. With lastwords not one record is lost and the last line is
//! complete.
//!
//! ```sh
//! cargo run --example quit                           # all three, side by side
//! cargo run --example quit -- --writer lastwords     # lastwords: 0 lost
//! cargo run --example quit -- --writer buffered      # a flushed-every-4,096 buffer: the tail lost
//! cargo run --example quit -- --writer non-blocking  # tracing_appender's worker: what it had not written yet
//! ```
//!
//! Each writer runs in a child of this process that writes `RECORDS` records
//! as fast as it can and then calls `std::process::exit(0)`, as a quit key
//! would; the parent then counts what reached the file and prints one line
//! per writer: `<writer>: <n> of <RECORDS> records reached <path>; <k> lost;
//! last line complete|cut`. The lastwords log goes to `$LASTWORDS_PATH`, else
//! `logs/quit.jsonl`; the others to `<same stem>.<writer>.jsonl` next to it
//! (truncated on each run).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::{Arc, Mutex, MutexGuard};

/// How many records the child writes before quitting.
const RECORDS: u64 = 20_000;
/// The message of every record the child writes, to count them.
const MESSAGE: &str = "frame rendered";

/// How often the buffered writer flushes, in records.
const FLUSH_EVERY: u64 = 4_096;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Writer {
    Lastwords,
    Buffered,
    NonBlocking,
}

impl Writer {
    const ALL: [Writer; 3] = [Writer::Lastwords, Writer::Buffered, Writer::NonBlocking];

    fn name(self) -> &'static str {
        match self {
            Writer::Lastwords => "lastwords",
            Writer::Buffered => "buffered",
            Writer::NonBlocking => "non-blocking",
        }
    }

    fn parse(name: &str) -> Option<Writer> {
        Writer::ALL.into_iter().find(|w| w.name() == name)
    }

    /// Where this writer's log goes, given the lastwords one.
    fn path(self, lastwords_path: &Path) -> PathBuf {
        if self == Writer::Lastwords {
            return lastwords_path.to_owned();
        }
        let stem = lastwords_path
            .file_stem()
            .map_or_else(|| "quit".into(), |s| s.to_string_lossy().into_owned());
        lastwords_path.with_file_name(format!("{stem}.{}.jsonl", self.name()))
    }
}

/// A JSON log writer as such services write it: `fmt().json()` into a
/// `BufWriter` that is flushed every [`FLUSH_EVERY`] records and when it is
/// dropped, which `process::exit` never does.
#[derive(Clone)]
struct FlushEvery(Arc<Mutex<(BufWriter<File>, u64)>>);

/// One record's write: counts the record, and flushes every
/// [`FLUSH_EVERY`] of them, when the formatter is done with it.
struct FlushEveryRecord<'a>(MutexGuard<'a, (BufWriter<File>, u64)>);

impl Write for FlushEveryRecord<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 .0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0 .0.flush()
    }
}

impl Drop for FlushEveryRecord<'_> {
    fn drop(&mut self) {
        self.0 .1 += 1;
        if self.0 .1 % FLUSH_EVERY == 0 {
            // Ignored: a failed flush loses records, which is what this
            // writer is here to show anyway.
            let _ = self.0 .0.flush();
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for FlushEvery {
    type Writer = FlushEveryRecord<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        FlushEveryRecord(self.0.lock().unwrap_or_else(|e| e.into_inner()))
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
fn child(writer: Writer, path: &Path) -> io::Result<()> {
    match writer {
        Writer::Lastwords => {
            lastwords::init()
                .install()
                .map_err(|e| io::Error::other(e.to_string()))?;
        }
        Writer::NonBlocking => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
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
        Writer::Buffered => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            // Large enough to hold FLUSH_EVERY records: only the explicit
            // flush writes.
            let buffer = BufWriter::with_capacity(FLUSH_EVERY as usize * 1024, file);
            let writer = FlushEvery(Arc::new(Mutex::new((buffer, 0))));
            tracing_subscriber::fmt()
                .json()
                .flatten_event(true)
                .with_writer(writer)
                .init();
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
            Writer::Buffered | Writer::NonBlocking => true,
        };
        if ours && record["message"] == MESSAGE {
            delivered += 1;
        }
    }
    Ok((delivered, complete))
}

/// The parent: runs the child, then reports.
fn parent(writer: Writer, path: &Path) -> io::Result<ExitCode> {
    if writer != Writer::Lastwords {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        // The count is per run, so start from an empty file. Ignored: a
        // file that is not there is already empty.
        let _ = fs::remove_file(path);
    }
    let mut child = Command::new(std::env::current_exe()?)
        .args(["--writer", writer.name(), "--child"])
        .spawn()?;
    let status = child.wait()?;
    if !status.success() {
        eprintln!("quit: the child failed: {status}");
        return Ok(ExitCode::FAILURE);
    }
    let (delivered, complete) = count(path, writer, child.id())?;
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
    let mut writers = Writer::ALL.to_vec();
    let mut is_child = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().as_deref().map(Writer::parse)) {
            ("--writer", Some(Some(writer))) => writers = vec![writer],
            ("--child", None) => is_child = true,
            _ => {
                eprintln!("usage: quit [--writer lastwords|buffered|non-blocking]");
                return ExitCode::from(2);
            }
        }
    }
    let lastwords_path = lastwords::init().resolved_path();

    if is_child {
        let writer = writers[0];
        return match child(writer, &writer.path(&lastwords_path)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("quit: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let mut code = ExitCode::SUCCESS;
    for writer in writers {
        match parent(writer, &writer.path(&lastwords_path)) {
            Ok(ExitCode::SUCCESS) => {}
            Ok(failure) => code = failure,
            Err(e) => {
                eprintln!("quit: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
