//! Cost of one logged event, side by side in one run and on one file system:
//! the lastwords layer, `tracing_subscriber::fmt().json()` writing to a
//! `File` (the same durability: one write per event), the same through
//! `tracing_appender::non_blocking` (lossy), and the floors: one raw
//! `write(2)` of a preformatted line, and formatting only.
//!
//! Every writer is measured with 1 and 2 threads; 2-thread figures are wall
//! time divided by the number of events of both threads (throughput). After
//! the criterion run, a check counts the lines `non_blocking` loses with 2
//! threads, and a summary prints medians and ratios as a Markdown table.
//!
//! ```text
//! cargo bench --bench events
//! ```

mod common;

use std::hint::black_box;
use std::io::{BufRead, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use common::Row;
use criterion::Criterion;
use tracing::Dispatch;
use tracing_subscriber::prelude::*;

/// The event every writer formats: a message and three fields (an integer,
/// a short string and a float).
fn event(i: u64) {
    tracing::info!(n = i, s = "short", f = 0.25_f64, "request handled");
}

/// What the benchmarks write to, made once.
struct Setup {
    dir: PathBuf,
    lastwords: &'static (lastwords::LastwordsLayer, PathBuf),
    /// A line exactly like the lastwords record of [`event`], for the
    /// `write(2)` floor.
    line: Vec<u8>,
}

impl Setup {
    fn new() -> Setup {
        let dir = common::tmp_dir("events");
        let lastwords = common::lastwords(&dir);
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(lastwords.0.clone()));
        tracing::dispatcher::with_default(&dispatch, || event(1_000_000));
        drop(dispatch);
        let file = std::fs::File::open(&lastwords.1).expect("read the lastwords file");
        let mut line = std::io::BufReader::new(file)
            .lines()
            .last()
            .expect("the lastwords file has the event's record")
            .expect("the lastwords file is UTF-8");
        line.push('\n');
        Setup {
            dir,
            lastwords,
            line: line.into_bytes(),
        }
    }

    fn fmt_file(&self) -> (Dispatch, PathBuf) {
        let path = self.dir.join("fmt-json.jsonl");
        let file = Arc::new(common::append_file(&path));
        (common::fmt_json(file), path)
    }

    fn fmt_non_blocking(
        &self,
        name: &str,
    ) -> (
        Dispatch,
        tracing_appender::non_blocking::WorkerGuard,
        PathBuf,
    ) {
        let path = self.dir.join(name);
        let (writer, guard) = tracing_appender::non_blocking(common::append_file(&path));
        (common::fmt_json(writer), guard, path)
    }
}

fn writers(c: &mut Criterion, setup: &Setup) {
    for threads in [1, 2] {
        let mut group = c.benchmark_group(format!(
            "event_{threads}_thread{}",
            if threads == 1 { "" } else { "s" }
        ));

        // Only one dispatcher is alive at a time, so that callsite interest
        // and the maximum level are those of the subscriber being measured.
        let (layer, path) = setup.lastwords;
        let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
        group.bench_function("lastwords", |b| {
            b.iter_custom(|iters| {
                common::truncate(path);
                common::run_threads(threads, iters, &dispatch, event)
            })
        });
        drop(dispatch);

        let (dispatch, path) = setup.fmt_file();
        group.bench_function("fmt_json_file", |b| {
            b.iter_custom(|iters| {
                common::truncate(&path);
                common::run_threads(threads, iters, &dispatch, event)
            })
        });
        drop(dispatch);

        let (dispatch, guard, path) = setup.fmt_non_blocking("fmt-json-non-blocking.jsonl");
        group.bench_function("fmt_json_non_blocking", |b| {
            b.iter_custom(|iters| {
                common::truncate(&path);
                common::run_threads(threads, iters, &dispatch, event)
            })
        });
        drop(dispatch);
        drop(guard); // waits for the worker to write what it still holds

        // The syscall floor: the lastwords record, already formatted, with
        // one write(2) on an O_APPEND descriptor.
        let path = setup.dir.join("write-floor.jsonl");
        let file = common::append_file(&path);
        let fd = file.as_raw_fd();
        let line: &[u8] = &setup.line;
        group.bench_function("write_floor", |b| {
            b.iter_custom(|iters| {
                common::truncate(&path);
                let write = |_| {
                    // SAFETY: `line` is a live buffer of `line.len()` bytes
                    // and `fd` stays open for the whole benchmark.
                    let n = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
                    assert_eq!(n, line.len() as isize, "short write in the floor benchmark");
                };
                run_plain(threads, iters, &write)
            })
        });
        drop(file);

        // The same line in the three pieces lastwords hands to writev(2):
        // head, `,"seq":N`, tail.
        let path = setup.dir.join("writev-floor.jsonl");
        let file = common::append_file(&path);
        let fd = file.as_raw_fd();
        let seq_at = find(line, b",\"seq\":");
        let tail_at = seq_at + 1 + find(&line[seq_at + 1..], b",");
        let parts = [&line[..seq_at], &line[seq_at..tail_at], &line[tail_at..]];
        group.bench_function("writev_floor", |b| {
            b.iter_custom(|iters| {
                common::truncate(&path);
                let write = |_| {
                    let iov = parts.map(|p| libc::iovec {
                        iov_base: p.as_ptr() as *mut libc::c_void,
                        iov_len: p.len(),
                    });
                    // SAFETY: the iovecs describe live buffers and `fd`
                    // stays open for the whole benchmark.
                    let n = unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) };
                    assert_eq!(n, line.len() as isize, "short write in the floor benchmark");
                };
                run_plain(threads, iters, &write)
            })
        });
        drop(file);
        group.finish();
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the record has the key")
}

/// [`common::run_threads`] for a closure that does not log.
fn run_plain(threads: usize, iters: u64, f: &(dyn Fn(u64) + Sync)) -> std::time::Duration {
    let barrier = std::sync::Barrier::new(threads + 1);
    let elapsed = std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                barrier.wait();
                for i in 0..iters {
                    f(i);
                }
            });
        }
        barrier.wait();
        std::time::Instant::now()
    })
    .elapsed();
    elapsed / threads as u32
}

fn formatting(c: &mut Criterion) {
    let mut group = c.benchmark_group("format_only");

    // serde_json writing the same event, flattened, into a reused buffer.
    let mut buf = Vec::with_capacity(512);
    group.bench_function("serde_json", |b| {
        b.iter(|| {
            buf.clear();
            serde_format(&mut buf, black_box(42), black_box("short"), black_box(0.25));
            black_box(buf.len())
        })
    });

    // tracing-subscriber's JSON formatter, everything but the write.
    let dispatch = common::fmt_json(std::io::sink);
    group.bench_function("fmt_json_to_sink", |b| {
        b.iter_custom(|iters| common::run_threads(1, iters, &dispatch, event))
    });
    drop(dispatch);
    group.finish();
}

fn serde_format(out: &mut Vec<u8>, n: u64, s: &str, f: f64) {
    use serde::ser::{SerializeMap, Serializer};
    let mut ser = serde_json::Serializer::new(out);
    let result = (|| {
        let mut map = ser.serialize_map(None)?;
        map.serialize_entry("timestamp", "2026-11-25T09:30:00.123456Z")?;
        map.serialize_entry("level", "INFO")?;
        map.serialize_entry("message", "request handled")?;
        map.serialize_entry("target", "events")?;
        map.serialize_entry("n", &n)?;
        map.serialize_entry("s", s)?;
        map.serialize_entry("f", &f)?;
        map.end()
    })();
    result.expect("serializing into a Vec cannot fail");
    ser.into_inner().push(b'\n');
}

/// How many lines `non_blocking` loses when 2 threads log as fast as they
/// can (its default is lossy: a bounded channel that drops when full).
fn non_blocking_losses(setup: &Setup) {
    const PER_THREAD: u64 = 300_000;
    let (dispatch, guard, path) = setup.fmt_non_blocking("non-blocking-losses.jsonl");
    common::run_threads(2, PER_THREAD, &dispatch, event);
    drop(dispatch);
    drop(guard);
    let written = count_lines(&path);
    let sent = 2 * PER_THREAD;
    let lost = sent - written;
    println!(
        "\nnon_blocking, 2 threads: {sent} events sent, {written} lines in the file, \
         {lost} lost ({:.1}%)",
        lost as f64 * 100.0 / sent as f64
    );
}

/// The headline ratios, measured in alternation (see [`common::paired`]).
fn paired_events(setup: &Setup, threads: usize) {
    let per_thread = |n: u64| n / threads as u64;
    let scale = threads as u32;
    let (layer, lastwords_path) = setup.lastwords;
    let fmt_path = setup.dir.join("paired-fmt-json.jsonl");
    let fmt_file = Arc::new(common::append_file(&fmt_path));
    let nb_path = setup.dir.join("paired-non-blocking.jsonl");
    let floor_path = setup.dir.join("paired-write-floor.jsonl");
    let floor_file = common::append_file(&floor_path);
    let fd = floor_file.as_raw_fd();
    let line: &[u8] = &setup.line;
    let mut contenders: Vec<common::Contender<'_>> = vec![
        (
            "fmt().json() → File",
            Box::new(|n| {
                common::truncate(&fmt_path);
                let dispatch = common::fmt_json(fmt_file.clone());
                common::run_threads(threads, per_thread(n), &dispatch, event) * scale
            }),
        ),
        (
            "write(2) floor",
            Box::new(|n| {
                common::truncate(&floor_path);
                let write = |_| {
                    // SAFETY: `line` is live and `fd` open for the whole run.
                    let n = unsafe { libc::write(fd, line.as_ptr().cast(), line.len()) };
                    assert_eq!(n, line.len() as isize, "short write in the floor benchmark");
                };
                run_plain(threads, per_thread(n), &write) * scale
            }),
        ),
        (
            "lastwords",
            Box::new(|n| {
                common::truncate(lastwords_path);
                let dispatch = Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
                common::run_threads(threads, per_thread(n), &dispatch, event) * scale
            }),
        ),
        (
            "fmt().json() → non_blocking",
            Box::new(|n| {
                common::truncate(&nb_path);
                let (writer, _guard) =
                    tracing_appender::non_blocking(common::append_file(&nb_path));
                let dispatch = common::fmt_json(writer);
                common::run_threads(threads, per_thread(n), &dispatch, event) * scale
            }),
        ),
    ];
    let title = format!(
        "Per event, {threads} thread{}",
        if threads == 1 { "" } else { "s" }
    );
    common::paired(&title, 25, 20_000, &mut contenders, 2);
}

fn count_lines(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("read the non_blocking file");
    std::io::BufReader::new(file).lines().count() as u64
}

fn main() {
    let start = SystemTime::now();
    let setup = Setup::new();
    let mut c = common::criterion();
    writers(&mut c, &setup);
    formatting(&mut c);
    c.final_summary();

    let filter_matches = |name: &str| {
        let args: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| !a.starts_with('-'))
            .collect();
        args.is_empty() || args.iter().any(|a| name.contains(a.as_str()))
    };
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    if filter_matches("non_blocking_losses") {
        non_blocking_losses(&setup);
    }
    if filter_matches("paired") {
        paired_events(&setup, 1);
        paired_events(&setup, 2);
    }
    println!("\nrecord sizes: lastwords {} bytes", setup.line.len());

    let rows = [
        Row {
            id: "event_1_thread/lastwords",
            what: "lastwords layer → file",
            anchor: None,
        },
        Row {
            id: "event_1_thread/fmt_json_file",
            what: "fmt().json() → File",
            anchor: Some(2833.0),
        },
        Row {
            id: "event_1_thread/fmt_json_non_blocking",
            what: "fmt().json() → non_blocking",
            anchor: Some(1623.0),
        },
        Row {
            id: "event_1_thread/write_floor",
            what: "one write(2) of the preformatted line",
            anchor: Some(1075.0),
        },
        Row {
            id: "event_1_thread/writev_floor",
            what: "one writev(2) of the same line in 3 pieces",
            anchor: None,
        },
        Row {
            id: "format_only/serde_json",
            what: "serde_json formatting only",
            anchor: Some(218.0),
        },
        Row {
            id: "format_only/fmt_json_to_sink",
            what: "fmt().json() formatting, no write",
            anchor: None,
        },
    ];
    common::print_summary(
        "1 thread",
        &rows,
        &[
            ("event_1_thread/fmt_json_file", "fmt→File"),
            ("event_1_thread/write_floor", "write(2)"),
        ],
        start,
    );
    let rows = [
        Row {
            id: "event_2_threads/lastwords",
            what: "lastwords layer → file",
            anchor: None,
        },
        Row {
            id: "event_2_threads/fmt_json_file",
            what: "fmt().json() → File",
            anchor: None,
        },
        Row {
            id: "event_2_threads/fmt_json_non_blocking",
            what: "fmt().json() → non_blocking",
            anchor: None,
        },
        Row {
            id: "event_2_threads/write_floor",
            what: "one write(2) of the preformatted line",
            anchor: None,
        },
        Row {
            id: "event_2_threads/writev_floor",
            what: "one writev(2) of the same line in 3 pieces",
            anchor: None,
        },
    ];
    common::print_summary(
        "2 threads (wall time per event of both threads)",
        &rows,
        &[
            ("event_2_threads/fmt_json_file", "fmt→File"),
            ("event_2_threads/write_floor", "write(2)"),
        ],
        start,
    );
    let _ = std::io::stdout().flush(); // nothing to do if stdout is gone
}
