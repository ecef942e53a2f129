//! Finding each record's text in the bytes of its file, so that the staged row refers to the
//! lake's copy of the file ([`crate::staged::sources`]) instead of copying the text.

/// Finds each record's text in the bytes of its file, in record order (the parser hands a
/// file's records on in the order the file holds them).
pub struct Locator<'a> {
    content: &'a [u8],
    cursor: usize,
}

impl<'a> Locator<'a> {
    /// A locator over the bytes of a file as they are on disk.
    pub fn new(content: &'a [u8]) -> Locator<'a> {
        Locator { content, cursor: 0 }
    }

    /// The offset of `text` in the file, at or after the previous text found; `None` (the
    /// text is carried) when the file does not hold it there byte for byte. After a miss the
    /// locator stops, so that a file whose texts are not its bytes costs one search, not one
    /// per record.
    pub fn locate(&mut self, text: &str) -> Option<u64> {
        let needle = text.as_bytes();
        let hay = self.content.get(self.cursor..)?;
        // Usually the text starts at the next `{`, after a comma or a line ending.
        let at = match memchr::memchr(b'{', hay) {
            Some(p) if hay[p..].starts_with(needle) => Some(p),
            _ => memchr::memmem::find(hay, needle),
        };
        let Some(p) = at.filter(|_| !needle.is_empty()) else {
            self.cursor = self.content.len() + 1;
            return None;
        };
        let offset = self.cursor + p;
        self.cursor = offset + needle.len();
        Some(offset as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_are_found_in_order_and_a_miss_stops_the_search() {
        let page = br#"{"items":[{"a":1},{"a":2}, {"a":1}]}"#;
        let mut l = Locator::new(page);
        assert_eq!(l.locate(r#"{"a":1}"#), Some(10));
        assert_eq!(l.locate(r#"{"a":2}"#), Some(18));
        // The same text again is the next copy, not the first.
        assert_eq!(l.locate(r#"{"a":1}"#), Some(27));
        // Past the end: none.
        assert_eq!(l.locate(r#"{"a":1}"#), None);
        let mut l = Locator::new(page);
        // A text the file does not hold (lossy, or re-encoded) stops the locator.
        assert_eq!(l.locate(r#"{"a": 2}"#), None);
        assert_eq!(l.locate(r#"{"a":2}"#), None);
        assert_eq!(Locator::new(page).locate(""), None);
    }
}
