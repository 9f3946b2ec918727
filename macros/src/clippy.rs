//! Under Clippy, `#[exit_path]` leaves the function as written.
//!
//! Clippy's lints look for shapes in the user's code (`let x = ..; x`,
//! `Ok(x?)`, a fn that always returns `Ok`), and an exit rewritten to pass
//! its value through a recording call no longer has them. Clippy only
//! checks code, it never runs it: given the function as written, it lints
//! exactly what it lints without the attribute, no more (nothing of the
//! expansion) and no less. The attribute's arguments are still checked, so
//! a misused attribute is an error under Clippy too.
//!
//! Clippy runs as its own driver binary (`clippy-driver`, which `cargo
//! clippy` runs for the workspace's crates), and a proc macro runs inside
//! the compiler's process: the process's executable tells. `cargo check`
//! and `cargo build` run `rustc`, and get the full expansion, which
//! rustc's own lints check.

use std::sync::OnceLock;

/// Whether this expansion runs inside Clippy.
pub fn running() -> bool {
    static RUNNING: OnceLock<bool> = OnceLock::new();
    *RUNNING.get_or_init(|| {
        std::env::current_exe().is_ok_and(|exe| {
            exe.file_stem()
                .and_then(|s| s.to_str())
                .is_some_and(|s| s.starts_with("clippy-driver"))
        })
    })
}
