//! Helpers of the macros' unit tests.

/// Panics if `out` (expanded tokens as text) names an absolute path other
/// than `::faust::__private::...` or `::core::...`: generated code must
/// reach everything through the facade.
pub(crate) fn assert_paths_only_private(out: &str) {
    let mut rest = out;
    while let Some(at) = rest.find(":: ") {
        let before = rest[..at].trim_end();
        let path = &rest[at..];
        // A leading `::` (not one inside a path like `faust :: Result`).
        if before.is_empty()
            || !before.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '>')
        {
            assert!(
                path.starts_with(":: faust :: __private ::") || path.starts_with(":: core ::"),
                "absolute path outside `::faust::__private`/`::core`: {}",
                &path[..path.len().min(40)]
            );
        }
        rest = &rest[at + 3..];
    }
}
