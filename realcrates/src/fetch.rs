//! Gets a crate's published source from crates.io with cargo itself.
//!
//! A throwaway package depending on `name = "=version"` is resolved with
//! `cargo metadata`, which downloads and unpacks the crate into cargo's
//! registry cache and prints where its manifest is. Nothing else touches the
//! network.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::{fs, io};

use crate::crates::Crate;

/// Returns the directory of the unpacked source of `krate`, downloading it
/// if needed. `scratch` holds the throwaway package.
///
/// # Errors
///
/// Cargo could not resolve or download the crate, or its output did not name
/// the crate's manifest.
pub fn source_dir(krate: &Crate, scratch: &Path) -> io::Result<PathBuf> {
    let dir = scratch.join(format!("for-{}-{}", krate.name, krate.version));
    fs::create_dir_all(dir.join("src"))?;
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetch-{name}\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n\
             [dependencies]\n{name} = \"={version}\"\n\n[workspace]\n",
            name = krate.name,
            version = krate.version,
        ),
    )?;
    fs::write(dir.join("src/lib.rs"), "")?;
    let out = Command::new(cargo())
        .args(["metadata", "--format-version", "1", "--manifest-path"])
        .arg(dir.join("Cargo.toml"))
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "cargo metadata for {} {} failed:\n{}",
            krate.name,
            krate.version,
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    let json = String::from_utf8_lossy(&out.stdout);
    let tail = format!(
        "{}{}-{}{}Cargo.toml\"",
        std::path::MAIN_SEPARATOR,
        krate.name,
        krate.version,
        std::path::MAIN_SEPARATOR
    );
    json.split("\"manifest_path\":\"")
        .filter_map(|s| s.find('"').map(|end| &s[..=end]))
        .find(|path| path.ends_with(&tail))
        .map(|path| {
            PathBuf::from(&path[..path.len() - 1])
                .parent()
                .unwrap()
                .to_path_buf()
        })
        .ok_or_else(|| {
            io::Error::other(format!(
                "cargo metadata did not name {}-{}",
                krate.name, krate.version
            ))
        })
}

/// The cargo that runs this tool, so that the crates are built by the same
/// toolchain as the checkout.
pub fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Copies a directory tree (the crate's source) into `to`, which must not
/// exist.
///
/// # Errors
///
/// Reading or writing failed.
pub fn copy_tree(from: &Path, to: &Path) -> io::Result<()> {
    fs::create_dir_all(to)?;
    for entry in fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        let kind = entry.file_type()?;
        if kind.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else if kind.is_file() {
            fs::copy(entry.path(), &target)?;
        }
        // Symlinks are not in published crates (cargo package resolves them).
    }
    Ok(())
}
