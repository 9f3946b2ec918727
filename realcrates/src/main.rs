//! Proof on real code that `#[exit_path]` changes nothing but the records:
//! downloads popular crates at pinned versions, puts
//! `#[lastwords::exit_path]` on every function they define, and runs their
//! own test suites against the current checkout of lastwords.
//!
//! ```text
//! cargo run -p lastwords-realcrates                  # every crate
//! cargo run -p lastwords-realcrates -- semver either # some crates
//! cargo run -p lastwords-realcrates -- --no-plain    # skip the baseline runs
//! cargo run -p lastwords-realcrates -- bench         # compile-time cost
//! ```
//!
//! Each crate is tested as published (the baseline: its suite must pass on
//! this toolchain, and its warnings are the reference) and annotated. When
//! the annotated run fails, the crate is tested once more with only the
//! dependency added, to tell the dependency's fault from the macro's. All
//! crates run even when one fails; the exit status is non-zero if any did.
//! Everything lives under `target/realcrates/`: the logs of each run in
//! `logs/`, the prepared copies in `work/`.

mod annotate;
mod bench;
mod crates;
mod fetch;
mod generate;
mod report;
mod testrun;
mod workdir;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::{env, fs, io};

use annotate::FnSite;
use crates::{Crate, CRATES};
use report::CrateReport;
use workdir::{Excluded, Mode};

/// Options from the command line.
struct Options {
    only: Vec<String>,
    plain: bool,
    lastwords: PathBuf,
    /// Rounds of leaving failing functions plain and building again.
    isolate: usize,
}

const USAGE: &str = "\
usage: lastwords-realcrates [--no-plain] [--isolate ROUNDS] [--lastwords PATH] [CRATE ...]
       lastwords-realcrates bench [--fns N] [--runs N]

Annotates every function of each crate with #[lastwords::exit_path] and runs
its own test suite against the lastwords checkout at PATH (default: this one).
When a crate fails to compile, the functions the errors point into are left
plain and the crate is built again, up to ROUNDS times (default 4), to show
every failure and run the tests.";

fn main() -> ExitCode {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("realcrates/ is in the repository")
        .to_path_buf();
    let args: Vec<String> = env::args().skip(1).collect();
    let result = if args.first().is_some_and(|a| a == "bench") {
        bench::run(&root, &args[1..])
    } else {
        match parse_options(&args, &root) {
            Ok(options) => run(&root, &options),
            Err(message) => {
                eprintln!("{message}\n\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("lastwords-realcrates: {e}");
            ExitCode::from(2)
        }
    }
}

fn parse_options(args: &[String], root: &Path) -> Result<Options, String> {
    let mut options = Options {
        only: Vec::new(),
        plain: true,
        lastwords: root.to_path_buf(),
        isolate: 4,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--no-plain" => options.plain = false,
            "--isolate" => {
                let n = args.next().and_then(|n| n.parse().ok());
                options.isolate = n.ok_or("--isolate needs a number of rounds")?;
            }
            "--lastwords" => {
                let path = args.next().ok_or("--lastwords needs a path")?;
                options.lastwords = fs::canonicalize(path).map_err(|e| format!("{path}: {e}"))?;
            }
            "-h" | "--help" => return Err(String::new()),
            name if !name.starts_with('-') && CRATES.iter().any(|c| c.name == name) => {
                options.only.push(name.to_owned());
            }
            other => return Err(format!("unknown argument or crate: {other}")),
        }
    }
    Ok(options)
}

/// Tests every selected crate; true when all passed.
fn run(root: &Path, options: &Options) -> io::Result<bool> {
    let base = root.join("target/realcrates");
    let logs = base.join("logs");
    fs::create_dir_all(&logs)?;
    let mut reports = Vec::new();
    for krate in CRATES
        .iter()
        .filter(|c| options.only.is_empty() || options.only.iter().any(|n| n == c.name))
    {
        eprintln!("== {} {}: {}", krate.name, krate.version, krate.style);
        let report = match test_crate(root, &base, krate, options) {
            Ok(report) => report,
            Err(e) => CrateReport::broken(krate, e.to_string()),
        };
        eprintln!("{}", report.line());
        reports.push(report);
    }
    report::print(&reports, &logs);
    Ok(reports.iter().all(CrateReport::passed))
}

fn test_crate(
    root: &Path,
    base: &Path,
    krate: &Crate,
    options: &Options,
) -> io::Result<CrateReport> {
    let source = fetch::source_dir(krate, &base.join("fetch"))?;
    let id = format!("{}-{}", krate.name, krate.version);
    let work = base.join("work").join(&id);
    let lock = root.join("realcrates/locks").join(format!("{id}.lock"));
    let target_dir = base.join("target");
    let mut report = CrateReport::new(krate);
    if !lock.exists() {
        resolve(&source, &work, &options.lastwords, &lock)?;
    }

    let run_mode = |mode: Mode, excluded: &Excluded, round: usize| {
        let prepared = workdir::prepare(&source, &work, mode, &options.lastwords, &lock, excluded)?;
        let suffix = if round == 0 {
            String::new()
        } else {
            format!(".{round}")
        };
        let log = base
            .join("logs")
            .join(format!("{id}.{}{suffix}.log", mode.name()));
        eprintln!(
            "   {}{suffix}: cargo test ({} fns annotated) > {}",
            mode.name(),
            prepared.functions,
            log.display()
        );
        let outcome = testrun::cargo_test(&prepared.dir, &target_dir, krate.test_args, &log)?;
        io::Result::Ok((prepared, outcome))
    };

    if options.plain {
        let (prepared, outcome) = run_mode(Mode::Plain, &Excluded::new(), 0)?;
        report.record(Mode::Plain, prepared, outcome);
    }
    let (mut prepared, outcome) = run_mode(Mode::Annotated, &Excluded::new(), 0)?;
    let mut last = outcome.clone();
    report.record(Mode::Annotated, prepared.clone(), outcome);
    if report.annotated_passed() {
        return Ok(report);
    }
    let (dep_prepared, dep_outcome) = run_mode(Mode::DepOnly, &Excluded::new(), 0)?;
    let dependency_errors = dep_outcome.errors.clone();
    report.record(Mode::DepOnly, dep_prepared, dep_outcome);

    // A compile error stops cargo at the first target that fails, hiding
    // what the others would show. Leave the functions the errors point
    // into without the attribute and build again, to find the rest and to
    // run the tests.
    let mut excluded = Excluded::new();
    for round in 1..=options.isolate {
        let mut new = Vec::new();
        for (error, lines) in last.errors.iter().zip(&last.error_lines) {
            if dependency_errors.contains(error) {
                continue;
            }
            if let Some((file, site)) = enclosing_fn(&prepared.sites, lines) {
                if excluded.insert((file.clone(), site.line)) {
                    new.push((file, site, error.clone()));
                }
            }
        }
        if new.is_empty() {
            break;
        }
        report.exclude(new);
        let (next_prepared, outcome) = run_mode(Mode::Annotated, &excluded, round)?;
        prepared = next_prepared;
        last = outcome.clone();
        report.record_isolated(outcome);
        if last.success {
            break;
        }
    }
    Ok(report)
}

/// The innermost annotated function containing the first of `lines` that
/// is inside one.
fn enclosing_fn(
    sites: &[(PathBuf, FnSite)],
    lines: &[(String, usize)],
) -> Option<(PathBuf, FnSite)> {
    lines.iter().find_map(|(file, line)| {
        sites
            .iter()
            .filter(|(f, s)| f == Path::new(file) && (s.line..=s.end_line).contains(line))
            .min_by_key(|(_, s)| s.end_line - s.line)
            .cloned()
    })
}

/// Resolves the crate's dependencies (dev-dependencies from crates.io, and
/// lastwords) once and keeps the lockfile in `realcrates/locks/`, so that
/// later runs, and every mode of a run, test the same code.
fn resolve(source: &Path, work: &Path, lastwords: &Path, lock: &Path) -> io::Result<()> {
    let prepared = workdir::prepare(
        source,
        work,
        Mode::DepOnly,
        lastwords,
        lock,
        &Excluded::new(),
    )?;
    let status = std::process::Command::new(fetch::cargo())
        .arg("generate-lockfile")
        .current_dir(&prepared.dir)
        .status()?;
    if !status.success() {
        return Err(io::Error::other(format!(
            "cargo generate-lockfile failed in {}",
            prepared.dir.display()
        )));
    }
    fs::create_dir_all(lock.parent().expect("locks/ has a parent"))?;
    fs::copy(prepared.dir.join("Cargo.lock"), lock)?;
    Ok(())
}
