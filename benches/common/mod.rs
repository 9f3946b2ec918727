//! What the benchmark binaries share: the one lastwords layer of the process,
//! files to write to, a runner for several writer threads, and the summary
//! table with ratios against the anchors of DESIGN.md.

// Each bench binary uses a different part of this module.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Barrier, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use criterion::Criterion;
use tracing::Dispatch;

/// Criterion settings that keep the whole `cargo bench` run to a few minutes
/// on a 2-core machine while giving medians stable to a few percent.
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

/// A directory for the files the benchmarks write, on the same file system
/// as the target directory, emptied at the start of each run.
pub fn tmp_dir(bench: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("bench-tmp")
        .join(bench);
    // A leftover from an earlier run: start empty so files stay small.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create the benchmark directory");
    dir
}

/// A file opened for appending, as `fmt()` would write to in production.
pub fn append_file(path: &Path) -> File {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open a benchmark file")
}

/// `tracing_subscriber::fmt().json()` writing through `writer`: the
/// formatter lastwords is compared with.
pub fn fmt_json<W>(writer: W) -> Dispatch
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    Dispatch::new(
        tracing_subscriber::fmt()
            .json()
            .with_writer(writer)
            .finish(),
    )
}

/// Empties `path` so that files do not grow to gigabytes over a run (the
/// page cache and delayed block allocation would then dominate). Writers
/// opened with `O_APPEND` keep appending at the new end.
pub fn truncate(path: &Path) {
    // A file that cannot be emptied only grows; the numbers stay valid.
    let _ = OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(0));
}

/// The lastwords layer of this process (the sink is process-wide, so it is
/// opened once) and the path of its file.
pub fn lastwords(dir: &Path) -> &'static (lastwords::LastwordsLayer, PathBuf) {
    static LAYER: OnceLock<(lastwords::LastwordsLayer, PathBuf)> = OnceLock::new();
    LAYER.get_or_init(|| {
        let path = dir.join("lastwords.jsonl");
        let layer = lastwords::init()
            .path(&path)
            .mirror(false)
            .layer()
            .expect("open the lastwords file");
        (layer, path)
    })
}

/// Runs `per_event` `iters` times on each of `threads` threads, all with
/// `dispatch` as their default subscriber, and returns the wall time divided
/// by the thread count: the time per event of the whole process, so that 1-
/// and 2-thread figures compare as throughput.
pub fn run_threads<F>(threads: usize, iters: u64, dispatch: &Dispatch, per_event: F) -> Duration
where
    F: Fn(u64) + Sync,
{
    if threads == 1 {
        return tracing::dispatcher::with_default(dispatch, || {
            let start = Instant::now();
            for i in 0..iters {
                per_event(i);
            }
            start.elapsed()
        });
    }
    let barrier = Arc::new(Barrier::new(threads + 1));
    let elapsed = std::thread::scope(|scope| {
        for _ in 0..threads {
            let barrier = barrier.clone();
            let per_event = &per_event;
            scope.spawn(move || {
                tracing::dispatcher::with_default(dispatch, || {
                    barrier.wait();
                    for i in 0..iters {
                        per_event(i);
                    }
                })
            });
        }
        barrier.wait();
        Instant::now()
    })
    .elapsed();
    elapsed / threads as u32
}

/// One row of the summary: a criterion benchmark (`group/function`) and
/// the anchor it is compared with.
pub struct Row {
    pub id: &'static str,
    pub what: &'static str,
    /// Anchor from DESIGN.md in ns, if there is one for this row.
    pub anchor: Option<f64>,
}

/// The median of a benchmark measured by this process, in ns, read back from
/// criterion's output; `None` when it did not run in this process (filtered
/// out on the command line).
pub fn median_ns(id: &str, since: SystemTime) -> Option<f64> {
    let file = criterion_home().join(id).join("new").join("estimates.json");
    let modified = std::fs::metadata(&file).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return home.into();
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        return Path::new(&target).join("criterion");
    }
    // target/release/deps/<bench>-<hash>
    std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("criterion")))
        .unwrap_or_else(|| "target/criterion".into())
}

/// Prints the rows measured in this run as a Markdown table: the median, the
/// anchor, and this run's ratios against `against` (ids of rows measured in
/// the same run).
pub fn print_summary(title: &str, rows: &[Row], against: &[(&str, &str)], since: SystemTime) {
    let measured: Vec<(&Row, f64)> = rows
        .iter()
        .filter_map(|row| Some((row, median_ns(row.id, since)?)))
        .collect();
    if measured.is_empty() {
        return;
    }
    let find = |id: &str| measured.iter().find(|(row, _)| row.id == id).map(|m| m.1);
    println!("\n## {title}\n");
    let mut header = String::from("| benchmark | what | median ns | anchor ns | vs anchor |");
    let mut rule = String::from("|---|---|---:|---:|---:|");
    for (_, label) in against {
        header.push_str(&format!(" ÷ {label} |"));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    for (row, ns) in &measured {
        let anchor = row.anchor.map_or("".into(), |a| format!("{a:.2}"));
        let vs = row.anchor.map_or("".into(), |a| format!("{:.2}×", ns / a));
        let mut line = format!(
            "| `{}` | {} | {} | {anchor} | {vs} |",
            row.id,
            row.what,
            fmt_ns(*ns)
        );
        for (id, _) in against {
            match find(id) {
                Some(base) => line.push_str(&format!(" {:.2}× |", ns / base)),
                None => line.push_str(" |"),
            }
        }
        println!("{line}");
    }
}

fn fmt_ns(ns: f64) -> String {
    if ns < 100.0 {
        format!("{ns:.2}")
    } else {
        format!("{ns:.0}")
    }
}

/// One contender of [`paired`]: a name and a routine that runs `n`
/// operations and returns how long they took.
pub type Contender<'a> = (&'static str, Box<dyn FnMut(u64) -> Duration + 'a>);

/// Measures `contenders` in alternation, `rounds` times `batch` operations
/// each, and prints the median ns per operation of each and the median of
/// the per-round ratios against the first `bases` of them.
///
/// Criterion measures one benchmark after the other, seconds apart; on a
/// shared 2-core machine the load changes between them, and ratios of
/// such figures wander by ±30%. Ratios of runs a few milliseconds apart
/// are steady, so the summary's ratios come from here.
pub fn paired(
    title: &str,
    rounds: usize,
    batch: u64,
    contenders: &mut [Contender<'_>],
    bases: usize,
) {
    let mut ns: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); contenders.len()];
    for (_, run) in contenders.iter_mut() {
        run(batch / 10); // warm-up: files opened, buffers grown, caches filled
    }
    for _ in 0..rounds {
        for (i, (_, run)) in contenders.iter_mut().enumerate() {
            ns[i].push(run(batch).as_nanos() as f64 / batch as f64);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        (v[v.len() / 4], v[v.len() / 2], v[v.len() * 3 / 4])
    };
    println!("\n## {title} (paired: {rounds} alternating rounds of {batch})\n");
    let mut header = String::from("| contender | median ns | (p25–p75) |");
    let mut rule = String::from("|---|---:|---:|");
    for (name, _) in &contenders[..bases] {
        header.push_str(&format!(" ÷ {name} (p25–p75) |"));
        rule.push_str("---:|");
    }
    println!("{header}\n{rule}");
    for (i, (name, _)) in contenders.iter().enumerate() {
        let (lo, mid, hi) = median(ns[i].clone());
        let mut line = format!(
            "| {name} | {} | ({}–{}) |",
            fmt_ns(mid),
            fmt_ns(lo),
            fmt_ns(hi)
        );
        for base in 0..bases {
            let ratios = ns[i].iter().zip(&ns[base]).map(|(a, b)| a / b).collect();
            let (lo, mid, hi) = median(ratios);
            line.push_str(&format!(" {mid:.2}× ({lo:.2}–{hi:.2}) |"));
        }
        println!("{line}");
    }
}
