//! Identifiers: GUIDs are validated and compared lowercase (inputs.md).

/// The lowercase form of `text` when it is a GUID (`8-4-4-4-12` hex digits, optional braces).
pub fn normalize_guid(text: &str) -> Option<String> {
    normalize_guid_cow(text).map(std::borrow::Cow::into_owned)
}

/// [`normalize_guid`] without a copy when `text` already is the lowercase form (ingest calls
/// it three times per record).
pub fn normalize_guid_cow(text: &str) -> Option<std::borrow::Cow<'_, str>> {
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
    Some(if b.iter().any(u8::is_ascii_uppercase) {
        std::borrow::Cow::Owned(t.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(t)
    })
}

/// Longest organization, partnership or reseller ID. IDs become partition directory names
/// (`costs/org=<id>/`): a file system refuses names above 255 bytes, and an ID of 300
/// characters would make `rate` fail for every organization of the month.
pub const MAX_ID_LEN: usize = 128;

/// Checks an ID of ours (organization, partnership, reseller): 1 to [`MAX_ID_LEN`]
/// characters of letters, digits, `-`, `_` and `.`, so that it is safe as a directory name
/// on every file system and object store. `Err` says why, as the end of a sentence.
pub fn check_safe_id(text: &str) -> Result<(), String> {
    let n = text.chars().count();
    if n == 0 {
        return Err("is empty".into());
    }
    if n > MAX_ID_LEN {
        return Err(format!(
            "is {n} characters long; IDs are at most {MAX_ID_LEN} characters"
        ));
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "holds {c:?}; IDs are letters, digits, '-', '_' and '.' only"
        ));
    }
    if text == "." || text == ".." {
        return Err("is a relative directory name".into());
    }
    Ok(())
}

/// An ID cut to a readable length for an error message.
pub fn shown_id(text: &str) -> String {
    if text.chars().count() <= 40 {
        text.to_string()
    } else {
        format!("{}...", text.chars().take(40).collect::<String>())
    }
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
    fn safe_ids() {
        assert!(check_safe_id("contoso").is_ok());
        assert!(check_safe_id("p-eu_1.x").is_ok());
        assert!(check_safe_id(&"a".repeat(128)).is_ok());
        assert_eq!(
            check_safe_id(&"a".repeat(129)).unwrap_err(),
            "is 129 characters long; IDs are at most 128 characters"
        );
        assert_eq!(
            check_safe_id("a/b").unwrap_err(),
            "holds '/'; IDs are letters, digits, '-', '_' and '.' only"
        );
        assert!(check_safe_id("").is_err());
        assert!(check_safe_id("..").is_err());
    }

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
