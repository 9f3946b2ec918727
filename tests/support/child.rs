//! Child processes for the crash-style tests: the example a test runs as
//! its child, built for the test's own profile, and a fresh directory per
//! test. `cargo test --test NAME` does not build examples, so each child is
//! built here (a no-op when it is up to date): never missing, never stale.
//! Nothing here forks the test harness: children are separate executables.

#![allow(dead_code)] // each test binary uses its own subset

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// `target/` (a test runs as `target/<profile>/deps/<name>-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors().nth(3).expect("target dir").to_owned()
}

/// `target/<profile>/`.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors().nth(2).expect("profile dir").to_owned()
}

/// The test's cargo profile (`dev` for `target/debug`).
fn profile() -> String {
    match profile_dir().file_name().and_then(|n| n.to_str()) {
        Some("debug") | None => "dev".into(),
        Some(other) => other.into(),
    }
}

/// The example `name`, built for this test's profile, once per test binary.
pub fn example(name: &str) -> PathBuf {
    example_in(name, &profile())
}

/// The example `name`, built for `profile` (`target/<profile>/examples/`),
/// once per test binary.
pub fn example_in(name: &str, profile: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<(String, String), PathBuf>>> = OnceLock::new();
    let built = BUILT.get_or_init(Default::default);
    let mut built = built.lock().unwrap_or_else(|e| e.into_inner());
    let key = (name.to_owned(), profile.to_owned());
    if let Some(path) = built.get(&key) {
        return path.clone();
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--profile", profile, "--example", name])
        .arg("--target-dir")
        .arg(target_dir())
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("run cargo");
    assert!(status.success(), "building {name} ({profile}) failed");
    let dir = if profile == "dev" { "debug" } else { profile };
    let path = target_dir().join(dir).join("examples").join(name);
    built.insert(key, path.clone());
    path
}

/// A fresh, empty directory `target/<area>/<name>` for one test's files.
pub fn scratch(area: &str, name: &str) -> PathBuf {
    let dir = target_dir().join(area).join(name);
    // Ignored: the directory may not exist yet.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create scratch dir");
    dir
}

/// Every complete line of the file, parsed; an unterminated last line (a
/// record cut by a kill) is skipped, as readers are told to. Panics on a
/// complete line that is not JSON.
pub fn read_records(path: &Path) -> Vec<serde_json::Value> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let complete = match bytes.iter().rposition(|&b| b == b'\n') {
        Some(end) => &bytes[..=end],
        None => &bytes[..0],
    };
    complete
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            serde_json::from_slice(line)
                .unwrap_or_else(|e| panic!("invalid line ({e}): {}", String::from_utf8_lossy(line)))
        })
        .collect()
}
