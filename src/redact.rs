//! Secret redaction: the one function every log line, error message, manifest and dry-run
//! line goes through before it leaves the process, so that a lake URL carrying a SAS token
//! (`az://c/p?sv=...&sig=...`) or a connection string never shows its credentials.
//!
//! Three rules, applied in one pass over the text:
//! - the query string of a URL (`scheme://...?...`) becomes `?***`: SAS tokens and
//!   presigned parameters live there, and none of it is needed to tell lakes apart;
//! - user info of a URL (`scheme://user:password@host`) becomes `***@`;
//! - the value of any `name=value` or `name: value` whose name says it is secret
//!   (`sig`, `signature`, `key`, `*key`, `*token*`, `*secret*`, `*password*`, `sas`,
//!   `credential*`) becomes `***`.

use std::borrow::Cow;

/// What replaces a secret.
pub const MASK: &str = "***";

/// `text` with every secret replaced by [`MASK`]. Text without secrets is returned as is
/// (borrowed), so redacting costs one scan on the common path.
pub fn redact(text: &str) -> Cow<'_, str> {
    if !might_hold_secret(text) {
        return Cow::Borrowed(text);
    }
    let out = mask_urls(text);
    let out = mask_named_values(&out);
    if out == text {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(out)
    }
}

/// Redact every string inside a JSON value in place (manifest options, notes).
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(s) => {
            if let Cow::Owned(r) = redact(s) {
                *s = r;
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::Object(map) => map.values_mut().for_each(redact_json),
        _ => {}
    }
}

/// Redact a string in place.
pub fn redact_string(s: &mut String) {
    if let Cow::Owned(r) = redact(s) {
        *s = r;
    }
}

/// Cheap pre-check: no `=`, `:` or `@` means nothing to mask.
fn might_hold_secret(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'=' | b':' | b'@' | b'?'))
}

/// Characters that end a URL or a value in free text.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '\'' | '`' | ')' | '>' | ']' | '}' | ',' | ';')
}

/// Mask the query string and user info of every `scheme://` URL.
fn mask_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("://") {
        let (before, after) = rest.split_at(at + 3);
        out.push_str(before);
        let end = after.find(is_delimiter).unwrap_or(after.len());
        // A colon or full stop right after a URL ends the sentence, not the URL.
        let end = after[..end].trim_end_matches([':', '.']).len();
        let (url, tail) = after.split_at(end);
        // User info: everything before the last '@' of the authority.
        let authority_end = url.find(['/', '?', '#']).unwrap_or(url.len());
        let (authority, path) = url.split_at(authority_end);
        match authority.rfind('@') {
            Some(i) => {
                out.push_str(MASK);
                out.push_str(&authority[i..]);
            }
            None => out.push_str(authority),
        }
        match path.find('?') {
            Some(q) => {
                out.push_str(&path[..=q]);
                out.push_str(MASK);
            }
            None => out.push_str(path),
        }
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// Whether a parameter or field name names a secret.
fn is_secret_name(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(n.as_str(), "sig" | "signature" | "sas" | "key" | "se_sig")
        || n.ends_with("key")
        || n.contains("token")
        || n.contains("secret")
        || n.contains("password")
        || n.starts_with("credential")
}

/// Mask the value after `name=` or `name: ` (or `"name": "`) when the name is secret.
fn mask_named_values(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    let mut copied = 0;
    while i < chars.len() {
        let (pos, c) = chars[i];
        if c != '=' && c != ':' {
            i += 1;
            continue;
        }
        // The name before the separator (skipping a closing quote of a JSON key).
        let mut name_end = pos;
        if name_end > 0 && text[..name_end].ends_with('"') {
            name_end -= 1;
        }
        let name_start = text[..name_end]
            .rfind(|ch: char| !(ch.is_ascii_alphanumeric() || ch == '_' || ch == '-'))
            .map(|k| k + 1)
            .unwrap_or(0);
        let name = &text[name_start..name_end];
        // `scheme://` is not a `name: value` pair.
        let is_url = c == ':' && text[pos..].starts_with("://");
        if name.is_empty() || is_url || !is_secret_name(name) {
            i += 1;
            continue;
        }
        // The value: after optional spaces and an opening quote, up to a delimiter or `&`.
        let mut v = pos + c.len_utf8();
        while text[v..].starts_with(' ') {
            v += 1;
        }
        let quoted = text[v..].starts_with('"');
        if quoted {
            v += 1;
        }
        let value_len = if quoted {
            text[v..].find('"').unwrap_or(text.len() - v)
        } else {
            text[v..]
                .find(|ch: char| is_delimiter(ch) || ch == '&')
                .unwrap_or(text.len() - v)
        };
        if value_len == 0 || &text[v..v + value_len] == MASK {
            i += 1;
            continue;
        }
        out.push_str(&text[copied..v]);
        out.push_str(MASK);
        copied = v + value_len;
        while i < chars.len() && chars[i].0 < copied {
            i += 1;
        }
    }
    out.push_str(&text[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_url_query_strings_are_masked() {
        assert_eq!(
            redact("--lake az://c/p?sv=2024-01-01&sig=SECRET: not found"),
            "--lake az://c/p?***: not found"
        );
        assert_eq!(
            redact("\"lake\":\"az://c/p?sig=SECRET\""),
            "\"lake\":\"az://c/p?***\""
        );
        assert_eq!(
            redact("https://u:SECRET@acct.blob.core.windows.net/c?x=1"),
            "https://***@acct.blob.core.windows.net/c?***"
        );
    }

    #[test]
    fn named_secret_values_are_masked() {
        assert_eq!(
            redact("AccountName=a;AccountKey=SECRET;EndpointSuffix=x"),
            "AccountName=a;AccountKey=***;EndpointSuffix=x"
        );
        assert_eq!(redact("sig=SECRET&sv=1"), "sig=***&sv=1");
        assert_eq!(
            redact("{\"client_secret\": \"SECRET\"}"),
            "{\"client_secret\": \"***\"}"
        );
        assert_eq!(redact("token: SECRET, next"), "token: ***, next");
        assert_eq!(
            redact("AZURE_STORAGE_SAS_KEY=SECRET"),
            "AZURE_STORAGE_SAS_KEY=***"
        );
    }

    #[test]
    fn ordinary_text_is_untouched_and_borrowed() {
        for t in [
            "ingest usage: 2101 read, 2000 new, 0 restated",
            "/tmp/lake/_runs/x.json: expected value at line 1 column 1",
            "month=2026-01 bucket=007: 12 rows; tier: 1",
            "meter 9e2d: unit 1 GB/Month",
            "az://c/lake/costs: written",
        ] {
            assert!(matches!(redact(t), Cow::Borrowed(_)), "{t}");
        }
    }
}
