//! Makes a fresh copy of a crate to test: as published (the baseline), with
//! only the lastwords dependency added, or with every function annotated.

use std::path::{Path, PathBuf};
use std::{fs, io};

use std::collections::BTreeSet;

use crate::annotate::{annotate_except, FnSite};
use crate::fetch::copy_tree;

/// What is changed in the copy.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Mode {
    /// Nothing but being its own workspace.
    Plain,
    /// The `lastwords` dependency added and linked (`extern crate lastwords
    /// as _;` at the end of the library's root), no attribute: tells a
    /// failure of the dependency alone from one of the macro. Linked, because
    /// rustc does not load a dependency nothing names, and what a loaded
    /// crate brings (its trait impls) is what can break inference.
    DepOnly,
    /// The dependency added and every function annotated.
    Annotated,
}

impl Mode {
    /// The directory name and the label in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Plain => "plain",
            Mode::DepOnly => "dep-only",
            Mode::Annotated => "annotated",
        }
    }
}

/// A crate copy ready for `cargo test`.
#[derive(Clone)]
pub struct Prepared {
    /// Its root (with `Cargo.toml`).
    pub dir: PathBuf,
    /// Functions that got the attribute.
    pub functions: usize,
    /// Files that got at least one.
    pub files: usize,
    /// Files syn could not parse (left unchanged), with syn's message.
    pub unparsed: Vec<(PathBuf, String)>,
    /// The annotated functions, by file relative to the crate's root.
    pub sites: Vec<(PathBuf, FnSite)>,
}

/// Functions left without the attribute: (file relative to the crate's
/// root, line of the function's first token).
pub type Excluded = BTreeSet<(PathBuf, usize)>;

/// Copies `source` to `work/<mode>` (replacing an earlier copy) and applies
/// `mode`. `lastwords` is the checkout the crate depends on; `lock`, when it
/// exists, becomes the copy's `Cargo.lock`; the functions in `excluded` are
/// not annotated.
///
/// # Errors
///
/// Reading or writing failed.
pub fn prepare(
    source: &Path,
    work: &Path,
    mode: Mode,
    lastwords: &Path,
    lock: &Path,
    excluded: &Excluded,
) -> io::Result<Prepared> {
    let dir = work.join(mode.name());
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    copy_tree(source, &dir)?;
    // A lockfile shipped in the package pins what its authors had; adding
    // lastwords to it mixes old and new versions (serde and serde_derive
    // apart). Every mode uses the one resolution the harness keeps.
    if lock.exists() {
        fs::copy(lock, dir.join("Cargo.lock"))?;
    } else if dir.join("Cargo.lock").exists() {
        fs::remove_file(dir.join("Cargo.lock"))?;
    }

    let manifest_path = dir.join("Cargo.toml");
    let mut manifest = fs::read_to_string(&manifest_path)?;
    let build_script = build_script(&manifest);
    if mode != Mode::Plain {
        // A dotted table may follow `[dependencies]`; published manifests
        // never name `lastwords`, so this cannot clash.
        manifest.push_str(&format!(
            "\n[dependencies.lastwords]\npath = {:?}\n",
            lastwords.display().to_string()
        ));
    }
    // The copy lives under this repository's target/: without a workspace of
    // its own, cargo would take it for a member of ours.
    manifest.push_str("\n[workspace]\n");
    fs::write(&manifest_path, manifest)?;

    if mode == Mode::DepOnly {
        let root = dir.join(lib_root(&fs::read_to_string(&manifest_path)?));
        let mut text = fs::read_to_string(&root)?;
        text.push_str("\nextern crate lastwords as _;\n");
        fs::write(&root, text)?;
    }

    let mut prepared = Prepared {
        dir: dir.clone(),
        functions: 0,
        files: 0,
        unparsed: Vec::new(),
        sites: Vec::new(),
    };
    if mode == Mode::Annotated {
        for file in rust_files(&dir)? {
            let rel = file.strip_prefix(&dir).unwrap_or(&file).to_path_buf();
            if rel == build_script {
                continue; // A build script cannot use normal dependencies.
            }
            let text = fs::read_to_string(&file)?;
            let is_excluded = |site: &FnSite| excluded.contains(&(rel.clone(), site.line));
            match annotate_except(&text, &is_excluded) {
                Ok(out) => {
                    prepared.sites.extend(
                        out.sites
                            .into_iter()
                            .filter(|site| !is_excluded(site))
                            .map(|site| (rel.clone(), site)),
                    );
                    if out.functions > 0 {
                        prepared.functions += out.functions;
                        prepared.files += 1;
                        fs::write(&file, out.text)?;
                    }
                }
                Err(e) => prepared.unparsed.push((file, e.to_string())),
            }
        }
    }
    Ok(prepared)
}

/// The build script's path as the manifest gives it (`build.rs` by default).
fn build_script(manifest: &str) -> PathBuf {
    manifest
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("build = \"")?
                .strip_suffix('"')
                .map(PathBuf::from)
        })
        .next()
        .unwrap_or_else(|| PathBuf::from("build.rs"))
}

/// The library's root as the manifest gives it (`src/lib.rs` by default):
/// the first `path = ` after `[lib]`.
fn lib_root(manifest: &str) -> PathBuf {
    manifest
        .split("\n[")
        .find(|table| table.starts_with("lib]"))
        .and_then(|table| {
            table.lines().find_map(|l| {
                l.trim()
                    .strip_prefix("path = \"")?
                    .strip_suffix('"')
                    .map(PathBuf::from)
            })
        })
        .unwrap_or_else(|| PathBuf::from("src/lib.rs"))
}

/// Every `.rs` file under `dir`, in a stable order; `target/` and `benches/`
/// (not built by `cargo test`) are left out.
fn rust_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                let name = path.file_name().unwrap_or_default();
                if !(d == dir && (name == "target" || name == "benches")) {
                    stack.push(path);
                }
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}
