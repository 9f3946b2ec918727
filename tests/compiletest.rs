//! Misuses of the macros are one clear error each, spanned at the offending
//! token (see `tests/ui/*.stderr`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
