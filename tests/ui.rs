//! Compile-time behaviour of `#[agent]`: every form and argument compiles
//! (`tests/ui/pass`), every misuse fails at the right token with a message
//! that names the fix (`tests/ui/fail`, with the expected `.stderr`).
//!
//! trybuild compiles the facade again, with the features of this test's
//! build; without the default features that leaves out librdkafka's C
//! build and the web server, which the macro does not touch, and takes
//! the test from most of the offline suite's time to a few minutes. So it
//! runs only without them:
//!
//! ```sh
//! cargo test --no-default-features --test ui
//! ```
//!
//! Regenerate the expected output with
//! `TRYBUILD=overwrite cargo test --no-default-features --test ui`.

#[test]
#[cfg_attr(
    any(feature = "kafka", feature = "web"),
    ignore = "compiles the facade again: run `cargo test --no-default-features --test ui`"
)]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
