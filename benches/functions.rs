//! What annotating a function costs per call, side by side in one run: a
//! plain function; the same with `#[lastwords::exit_path]` when all its
//! records are disabled by the filter, when only its `ok` record is (so the
//! call is still timed), and when it is written; the same with
//! `#[tracing::instrument(err, ret)]` written; async fns plain, annotated,
//! and annotated with a macro that may hide a `return` (polled); and the
//! breadcrumb ring (a
//! push alone, with the breadcrumb record filtered out, and a push plus its
//! record).
//!
//! ```text
//! cargo bench --bench functions
//! ```

mod common;

use std::fmt;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use common::Row;
use criterion::Criterion;
use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::prelude::*;

/// The error type of the measured functions (never returned: the calls
/// measured take the `Ok` path, the common one).
#[derive(Debug)]
pub struct BenchError;

impl fmt::Display for BenchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("bench error")
    }
}

impl std::error::Error for BenchError {}

#[inline(never)]
fn plain(x: u64) -> Result<u64, BenchError> {
    if x == u64::MAX {
        return Err(BenchError);
    }
    Ok(x.wrapping_mul(3))
}

#[lastwords::exit_path]
#[inline(never)]
fn with_exit_path(x: u64) -> Result<u64, BenchError> {
    if x == u64::MAX {
        return Err(BenchError);
    }
    Ok(x.wrapping_mul(3))
}

#[tracing::instrument(err, ret)]
#[inline(never)]
fn with_instrument(x: u64) -> Result<u64, BenchError> {
    if x == u64::MAX {
        return Err(BenchError);
    }
    Ok(x.wrapping_mul(3))
}

#[inline(never)]
async fn plain_async(x: u64) -> Result<u64, BenchError> {
    if x == u64::MAX {
        return Err(BenchError);
    }
    Ok(x.wrapping_mul(3))
}

#[lastwords::exit_path]
#[inline(never)]
async fn async_exit_path(x: u64) -> Result<u64, BenchError> {
    if x == u64::MAX {
        return Err(BenchError);
    }
    Ok(x.wrapping_mul(3))
}

/// A `return` the attribute cannot see.
macro_rules! fail_at_max {
    ($x:expr) => {
        if $x == u64::MAX {
            return Err(BenchError);
        }
    };
}

/// Runs as an inner block polled by lastwords (its macro may hide a
/// `return`): the polled form's cost per call.
#[lastwords::exit_path]
#[inline(never)]
async fn async_polled(x: u64) -> Result<u64, BenchError> {
    fail_at_max!(x);
    Ok(x.wrapping_mul(3))
}

/// Wakes nothing: the measured futures never wait.
struct NoWake;

impl std::task::Wake for NoWake {
    fn wake(self: Arc<Self>) {}
}

/// Polls a future that completes at once.
fn ready<F: std::future::Future>(fut: F) -> F::Output {
    thread_local! {
        static WAKER: std::task::Waker = std::task::Waker::from(Arc::new(NoWake));
    }
    let waker = WAKER.with(Clone::clone);
    let mut cx = std::task::Context::from_waker(&waker);
    match std::pin::pin!(fut).poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("the measured futures never wait"),
    }
}

#[inline(never)]
fn disabled_event(x: u64) {
    tracing::info!(x, "a disabled callsite");
}

#[inline(never)]
fn crumb() {
    lastwords::crumb!("bench breadcrumb");
}

static SITE: lastwords::__private::CrumbSite = lastwords::__private::CrumbSite {
    name: "bench breadcrumb",
    file: file!(),
    line: line!(),
};

struct Setup {
    dir: PathBuf,
    lastwords: &'static (lastwords::LastwordsLayer, PathBuf),
}

impl Setup {
    fn new() -> Setup {
        let dir = common::tmp_dir("functions");
        let lastwords = common::lastwords(&dir);
        Setup { dir, lastwords }
    }

    /// Everything is written.
    fn lastwords(&self) -> Dispatch {
        Dispatch::new(tracing_subscriber::registry().with(self.lastwords.0.clone()))
    }

    /// Only records at `level` or more severe are written. With `OFF`
    /// nothing is: every record of an annotated function is disabled. With
    /// `WARN` an `Ok` exit (INFO) and a breadcrumb record are filtered out,
    /// but an `Err` exit (ERROR) would be written, so the call is still timed.
    fn lastwords_at(&self, level: LevelFilter) -> Dispatch {
        let layer = self.lastwords.0.clone().with_filter(level);
        Dispatch::new(tracing_subscriber::registry().with(layer))
    }

    fn fmt_file(&self) -> (Dispatch, PathBuf) {
        let path = self.dir.join("fmt-json.jsonl");
        let file = Arc::new(common::append_file(&path));
        (common::fmt_json(file), path)
    }

    /// Says which macros wrote nothing (while they are stubs, the figures of
    /// their benchmarks measure a plain function).
    fn check_macros(&self) {
        let dispatch = self.lastwords();
        tracing::dispatcher::with_default(&dispatch, || {
            let _ = with_exit_path(1); // only the record matters here
            crumb();
        });
        drop(dispatch);
        let text = std::fs::read_to_string(&self.lastwords.1).unwrap_or_default();
        for (kind, what) in [("fn_exit", "#[exit_path]"), ("breadcrumb", "crumb!")] {
            if !text.contains(&format!("\"kind\":\"{kind}\"")) {
                println!("note: {what} wrote no {kind} record: its benchmarks do not measure it");
            }
        }
    }
}

fn calls(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("fn");
    let path = &setup.lastwords.1;
    // Only one dispatcher is alive at a time, so that callsite interest and
    // the maximum level are those of the subscriber being measured.
    let dispatch = setup.lastwords_at(LevelFilter::OFF);
    group.bench_function("plain", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(plain(black_box(i))).ok();
            })
        })
    });
    group.bench_function("exit_path_disabled", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(with_exit_path(black_box(i))).ok();
            })
        })
    });
    group.bench_function("instrument_disabled", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(with_instrument(black_box(i))).ok();
            })
        })
    });
    group.bench_function("disabled_event", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| disabled_event(black_box(i)))
        })
    });
    drop(dispatch);

    let dispatch = setup.lastwords_at(LevelFilter::WARN);
    group.bench_function("exit_path_ok_filtered", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(with_exit_path(black_box(i))).ok();
            })
        })
    });
    drop(dispatch);

    let dispatch = setup.lastwords();
    group.bench_function("exit_path_written", |b| {
        b.iter_custom(|iters| {
            common::truncate(path);
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(with_exit_path(black_box(i))).ok();
            })
        })
    });
    group.bench_function("instrument_written_lastwords", |b| {
        b.iter_custom(|iters| {
            common::truncate(path);
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(with_instrument(black_box(i))).ok();
            })
        })
    });
    drop(dispatch);

    let (dispatch, fmt_path) = setup.fmt_file();
    group.bench_function("instrument_written_fmt_file", |b| {
        b.iter_custom(|iters| {
            common::truncate(&fmt_path);
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(with_instrument(black_box(i))).ok();
            })
        })
    });
    drop(dispatch);
    group.finish();
}

/// An async fn per call: plain, annotated (the guard in the future), and
/// annotated with a macro that may hide a `return` (the body polled by
/// lastwords, whose exits reach the guard through a thread-local).
fn async_calls(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("async_fn");
    let path = &setup.lastwords.1;
    let dispatch = setup.lastwords_at(LevelFilter::OFF);
    group.bench_function("plain", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(ready(plain_async(black_box(i)))).ok();
            })
        })
    });
    group.bench_function("exit_path_disabled", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(ready(async_exit_path(black_box(i)))).ok();
            })
        })
    });
    group.bench_function("polled_disabled", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(ready(async_polled(black_box(i)))).ok();
            })
        })
    });
    drop(dispatch);

    let dispatch = setup.lastwords();
    group.bench_function("exit_path_written", |b| {
        b.iter_custom(|iters| {
            common::truncate(path);
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(ready(async_exit_path(black_box(i)))).ok();
            })
        })
    });
    group.bench_function("polled_written", |b| {
        b.iter_custom(|iters| {
            common::truncate(path);
            common::run_threads(1, iters, &dispatch, |i| {
                black_box(ready(async_polled(black_box(i)))).ok();
            })
        })
    });
    drop(dispatch);
    group.finish();
}

fn breadcrumbs(c: &mut Criterion, setup: &Setup) {
    let mut group = c.benchmark_group("breadcrumb");
    let path = &setup.lastwords.1;
    let dispatch = setup.lastwords_at(LevelFilter::WARN);
    group.bench_function("ring_push", |b| {
        b.iter_custom(|iters| {
            common::run_threads(1, iters, &dispatch, |_| {
                lastwords::__private::push_crumb(&SITE)
            })
        })
    });
    group.bench_function("crumb_filtered", |b| {
        b.iter_custom(|iters| common::run_threads(1, iters, &dispatch, |_| crumb()))
    });
    drop(dispatch);

    let dispatch = setup.lastwords();
    group.bench_function("crumb_written", |b| {
        b.iter_custom(|iters| {
            common::truncate(path);
            common::run_threads(1, iters, &dispatch, |_| crumb())
        })
    });
    drop(dispatch);
    group.finish();
}

/// The headline ratio, measured in alternation (see [`common::paired`]).
fn paired_calls(setup: &Setup) {
    let (layer, lastwords_path) = setup.lastwords;
    let fmt_path = setup.dir.join("paired-fmt-json.jsonl");
    let fmt_file = Arc::new(common::append_file(&fmt_path));
    let lastwords = || Dispatch::new(tracing_subscriber::registry().with(layer.clone()));
    let mut contenders: Vec<common::Contender<'_>> = vec![
        (
            "#[instrument(err, ret)] → fmt().json() File",
            Box::new(|n| {
                common::truncate(&fmt_path);
                let dispatch = common::fmt_json(fmt_file.clone());
                common::run_threads(1, n, &dispatch, |i| {
                    black_box(with_instrument(black_box(i))).ok();
                })
            }),
        ),
        (
            "#[exit_path] → lastwords",
            Box::new(|n| {
                common::truncate(lastwords_path);
                common::run_threads(1, n, &lastwords(), |i| {
                    black_box(with_exit_path(black_box(i))).ok();
                })
            }),
        ),
        (
            "#[instrument(err, ret)] → lastwords",
            Box::new(|n| {
                common::truncate(lastwords_path);
                common::run_threads(1, n, &lastwords(), |i| {
                    black_box(with_instrument(black_box(i))).ok();
                })
            }),
        ),
    ];
    common::paired("Per call, written", 25, 10_000, &mut contenders, 1);
}

fn main() {
    let start = SystemTime::now();
    let setup = Setup::new();
    setup.check_macros();
    let mut c = common::criterion();
    calls(&mut c, &setup);
    async_calls(&mut c, &setup);
    breadcrumbs(&mut c, &setup);
    c.final_summary();
    if std::env::args().any(|a| a == "--list" || a == "--test") {
        return;
    }
    let filtered = std::env::args()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"paired".contains(a.as_str()));
    if !filtered {
        paired_calls(&setup);
    }

    let rows = [
        Row {
            id: "fn/plain",
            what: "plain function",
            anchor: None,
        },
        Row {
            id: "fn/exit_path_disabled",
            what: "#[exit_path], all its records filtered out",
            anchor: None,
        },
        Row {
            id: "fn/exit_path_ok_filtered",
            what: "#[exit_path], ok filtered out, err enabled",
            anchor: None,
        },
        Row {
            id: "fn/instrument_disabled",
            what: "#[instrument(err, ret)], filtered out",
            anchor: None,
        },
        Row {
            id: "fn/disabled_event",
            what: "a disabled info! callsite (+ call)",
            anchor: Some(0.62),
        },
        Row {
            id: "fn/exit_path_written",
            what: "#[exit_path] → lastwords file",
            anchor: None,
        },
        Row {
            id: "fn/instrument_written_lastwords",
            what: "#[instrument(err, ret)] → lastwords file",
            anchor: None,
        },
        Row {
            id: "fn/instrument_written_fmt_file",
            what: "#[instrument(err, ret)] → fmt().json() File",
            anchor: Some(5660.0),
        },
    ];
    common::print_summary(
        "Function overhead",
        &rows,
        &[
            ("fn/instrument_written_fmt_file", "instrument→fmt File"),
            ("fn/instrument_written_lastwords", "instrument→lastwords"),
        ],
        start,
    );
    let median = |id| common::median_ns(id, start);
    if let (Some(plain), Some(disabled)) = (median("fn/plain"), median("fn/exit_path_disabled")) {
        println!(
            "\n#[exit_path] disabled adds {:.2} ns per call over the plain function",
            disabled - plain
        );
    }
    let rows = [
        Row {
            id: "breadcrumb/ring_push",
            what: "ring push alone (__private::push_crumb)",
            anchor: None,
        },
        Row {
            id: "breadcrumb/crumb_filtered",
            what: "crumb!, record filtered out",
            anchor: None,
        },
        Row {
            id: "breadcrumb/crumb_written",
            what: "crumb!, push and record",
            anchor: None,
        },
    ];
    common::print_summary("Breadcrumbs", &rows, &[], start);
    let rows = [
        Row {
            id: "async_fn/plain",
            what: "plain async fn, polled once",
            anchor: None,
        },
        Row {
            id: "async_fn/exit_path_disabled",
            what: "#[exit_path] async fn, records filtered out",
            anchor: None,
        },
        Row {
            id: "async_fn/polled_disabled",
            what: "#[exit_path] async fn with a hiding macro (polled), filtered out",
            anchor: None,
        },
        Row {
            id: "async_fn/exit_path_written",
            what: "#[exit_path] async fn → lastwords file",
            anchor: None,
        },
        Row {
            id: "async_fn/polled_written",
            what: "#[exit_path] async fn, polled → lastwords file",
            anchor: None,
        },
    ];
    common::print_summary("Async functions", &rows, &[], start);
}
