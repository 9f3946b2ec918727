//! Adding lastwords to a crate changes nothing in how that crate's own code
//! type-checks.
//!
//! A crate whose dependency graph links `serde_json` sees its
//! `impl PartialEq<Value> for u8` (and for every other integer type), which
//! makes `assert_eq!(v, vec![])` and `assert_eq!(&*v, &[])` ambiguous
//! (E0282/E0283). The runtime therefore links no such crate.
//!
//! Steps: write a small crate that depends on lastwords alone (the
//! workspace's `Cargo.lock` pins its versions), build it offline in a
//! target directory of its own, and run it. The same crate with
//! `serde_json` added must fail to build, so that the check itself is
//! known to catch the problem. (Not trybuild: its crates get this
//! package's dev-dependencies, and `tracing-subscriber`'s `json` feature
//! links `serde_json` there.)

use std::path::{Path, PathBuf};
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Writes the crate `name` with `main.rs` from `tests/ui-pass/` and its
/// extra dependency lines, builds and runs it; returns whether that
/// succeeded and what cargo said.
fn build_and_run(name: &str, extra_deps: &str, prelude: &str) -> (bool, String) {
    let dir = Path::new(ROOT).join("target/tests/inference").join(name);
    std::fs::create_dir_all(dir.join("src")).expect("the crate's directory");
    std::fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\nlastwords = {{ path = {ROOT:?} }}\n{extra_deps}\n[workspace]\n"
        ),
    )
    .expect("Cargo.toml");
    let main =
        std::fs::read_to_string(Path::new(ROOT).join("tests/ui-pass/empty-vec-inference.rs"))
            .expect("the case");
    std::fs::write(dir.join("src/main.rs"), format!("{prelude}{main}")).expect("main.rs");
    std::fs::copy(Path::new(ROOT).join("Cargo.lock"), dir.join("Cargo.lock")).expect("Cargo.lock");
    let target: PathBuf = Path::new(ROOT).join("target/tests/inference/target");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["run", "--offline", "--quiet", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target)
        .env_remove("RUSTFLAGS")
        .output()
        .expect("cargo runs");
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.success(), said)
}

#[test]
fn linking_lastwords_changes_no_inference() {
    let (ok, said) = build_and_run("with-lastwords", "", "");
    assert!(
        ok,
        "a crate linking lastwords does not build or run:\n{said}"
    );

    // The check can fail: the same crate with serde_json linked does not
    // compile, for the reason this test is about.
    let (ok, said) = build_and_run(
        "with-serde-json",
        "serde_json = \"1\"\n",
        "use serde_json as _;\n",
    );
    assert!(
        !ok,
        "serde_json no longer breaks the case; the check proves nothing"
    );
    assert!(
        said.contains("E0283") && said.contains("serde_json"),
        "failed for another reason:\n{said}"
    );
}
