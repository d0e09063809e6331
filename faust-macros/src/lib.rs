//! The `#[agent]` attribute macro of faust for Rust.
