//! Misuses of the macros are one clear error each, spanned at the offending
//! token (see `tests/ui/*.stderr`); and a misused `?` in an annotated fn
//! gets exactly the diagnostics it gets without the attribute
//! (`tests/ui-plain/` holds the same files with the attribute line left
//! blank, so that lines match).

use std::fs;

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.compile_fail("tests/ui-plain/*.rs");
}

#[test]
fn annotated_diagnostics_are_the_plain_ones() {
    let mut compared = 0;
    for entry in fs::read_dir("tests/ui-plain").unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "stderr") {
            continue;
        }
        let name = path.file_name().unwrap().to_str().unwrap();
        let plain = fs::read_to_string(&path).unwrap();
        let annotated = fs::read_to_string(format!("tests/ui/{name}")).unwrap();
        // The same messages, labels and positions. The underlines may
        // start earlier: an operand wrapped in a call spans from its first
        // token, where rustc would start a method call's at its name.
        assert_eq!(
            text(&annotated),
            text(&plain.replace("tests/ui-plain/", "tests/ui/")),
            "{name}"
        );
        compared += 1;
    }
    assert!(compared >= 4, "only {compared} plain diagnostics compared");
}

/// The diagnostics without their underlines.
fn text(stderr: &str) -> Vec<String> {
    stderr
        .lines()
        .map(|line| line.replace(['-', '^', '|', ' '], ""))
        .filter(|line| !line.is_empty())
        .collect()
}
