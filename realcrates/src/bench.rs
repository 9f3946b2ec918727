//! The compile-time cost of `#[exit_path]`: the same generated library,
//! plain and with every function annotated, each checked and built several
//! times in turn (plain, annotated, plain, …) after a warm-up, with only
//! the library itself recompiled.
//!
//! Both copies depend on lastwords, so only the attribute differs. Timed is
//! the whole `cargo check` / `cargo build` command, as a user waits for it,
//! without incremental compilation (which would reuse the unchanged
//! library's results): the cost of compiling the library afresh.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use std::{fs, io};

use crate::annotate::annotate;
use crate::fetch::cargo;
use crate::generate::library;

/// Runs the measurement; true when every build succeeded.
///
/// # Errors
///
/// Bad arguments, or a file could not be written.
pub fn run(root: &Path, args: &[String]) -> io::Result<bool> {
    let (mut fns, mut runs) = (200, 5);
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--fns", Some(n)) if n >= 2 => fns = n,
            ("--runs", Some(n)) if n >= 1 => runs = n,
            _ => {
                return Err(io::Error::other(format!(
                    "bench: bad argument {arg} (use --fns N, --runs N)"
                )))
            }
        }
    }

    let base = root.join("target/realcrates/bench");
    let target_dir = base.join("target");
    let plain = library(fns);
    let annotated = annotate(&plain).map_err(|e| io::Error::other(e.to_string()))?;
    let plain_dir = write_package(&base, "plain", &plain, root)?;
    let annotated_dir = write_package(&base, "annotated", &annotated.text, root)?;
    println!(
        "{fns} functions ({} annotated), {runs} runs each after a warm-up",
        annotated.functions
    );

    let mut ok = true;
    println!(
        "| command | plain (median) | annotated (median) | annotated / plain (median of pairs) |"
    );
    println!("|---|---:|---:|---:|");
    for command in ["check", "build"] {
        let mut pairs = Vec::new();
        for run in 0..=runs {
            let a = time(&plain_dir, &target_dir, command)?;
            let b = time(&annotated_dir, &target_dir, command)?;
            let (Some(a), Some(b)) = (a, b) else {
                ok = false;
                eprintln!(
                    "cargo {command} failed; see `cargo {command}` in {}",
                    base.display()
                );
                break;
            };
            if run > 0 {
                pairs.push((a, b));
            }
        }
        if pairs.is_empty() {
            continue;
        }
        let median = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let plain_s = median(pairs.iter().map(|p| p.0.as_secs_f64()).collect());
        let annotated_s = median(pairs.iter().map(|p| p.1.as_secs_f64()).collect());
        let ratio = median(
            pairs
                .iter()
                .map(|p| p.1.as_secs_f64() / p.0.as_secs_f64())
                .collect(),
        );
        println!("| cargo {command} | {plain_s:.2} s | {annotated_s:.2} s | {ratio:.2}× |");
    }
    Ok(ok)
}

/// Writes a package `bench-<name>` holding `source` as its library.
fn write_package(
    base: &Path,
    name: &str,
    source: &str,
    lastwords: &Path,
) -> io::Result<std::path::PathBuf> {
    let dir = base.join(name);
    fs::create_dir_all(dir.join("src"))?;
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"bench-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nlastwords = {{ path = {:?} }}\n\n[workspace]\n",
            lastwords.display().to_string()
        ),
    )?;
    fs::write(dir.join("src/lib.rs"), source)?;
    Ok(dir)
}

/// Times `cargo <command>` of the package after marking its source changed,
/// so that only it is compiled again; `None` when cargo failed.
fn time(dir: &Path, target_dir: &Path, command: &str) -> io::Result<Option<Duration>> {
    let lib = dir.join("src/lib.rs");
    fs::File::options()
        .append(true)
        .open(&lib)?
        .set_modified(std::time::SystemTime::now())?;
    let start = Instant::now();
    let status = Command::new(cargo())
        .args([command, "--quiet"])
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir)
        // Incremental compilation would reuse the unchanged library's
        // results and time little more than cargo's start.
        .env("CARGO_INCREMENTAL", "0")
        .stdout(Stdio::null())
        .status()?;
    let elapsed = start.elapsed();
    Ok(status.success().then_some(elapsed))
}
