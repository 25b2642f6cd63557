//! Small text helpers.

use peerchat_proto::limits::MAX_HUMAN_TEXT;

/// Cuts a human-readable text to MAX_HUMAN_TEXT bytes on a character boundary (Close and
/// FileCancel messages, SPEC.md §10).
pub fn truncate_human(s: &str) -> String {
    truncate_at_boundary(s, MAX_HUMAN_TEXT).to_owned()
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
pub fn truncate_at_boundary(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    #[test]
    fn cuts_on_char_boundaries() {
        let long = "é".repeat(1000);
        let cut = super::truncate_human(&long);
        assert!(cut.len() <= super::MAX_HUMAN_TEXT);
        assert_eq!(super::truncate_human("short"), "short");
    }
}
