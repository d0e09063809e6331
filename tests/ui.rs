//! Compile-time behaviour of `#[agent]`: every form and argument compiles
//! (`tests/ui/pass`), every misuse fails at the right token with a message
//! that names the fix (`tests/ui/fail`, with the expected `.stderr`).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
