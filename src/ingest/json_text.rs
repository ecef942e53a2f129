//! Small JSON helpers shared by the parsers: canonical JSON (sorted keys, for natural keys and
//! stable output), and numbers read from their *text*.
//!
//! The `_raw` forms work on the text of a value as it sits in the page buffer: when that text
//! is already what the `Value` form would print (the usual case: compact, keys sorted, plain
//! strings and integers) it is used as is, without building a DOM; anything else goes
//! through the `Value` form, so the result is byte-identical either way.

use crate::model::decimal::{Dec10, DecimalError};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;

/// Canonical JSON text of a value: object keys sorted at every level, no spaces.
pub fn canonical_json(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&map[*k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// A decimal from a raw JSON value: a number token, or a string holding a decimal.
pub fn decimal_from_raw(raw: &RawValue) -> Result<Dec10, DecimalError> {
    let text = raw.get().trim();
    if let Some(inner) = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        return Dec10::parse(inner);
    }
    Dec10::parse(text)
}

/// [`canonical_json`] of a value given as its JSON text.
pub fn canonical_raw(text: &str) -> Cow<'_, str> {
    if is_canonical(text.as_bytes()) {
        return Cow::Borrowed(text);
    }
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Cow::Owned(canonical_json(&v)),
        // The text came out of the JSON parser as one value, so this does not happen; the
        // text itself is the most faithful answer if it did.
        Err(_) => Cow::Borrowed(text),
    }
}

/// [`scalar_text`] of a value given as its JSON text.
pub fn scalar_raw(raw: &RawValue) -> Option<Cow<'_, str>> {
    let text = raw.get();
    let b = text.as_bytes();
    if b.len() >= 2 && b[0] == b'"' && !b.contains(&b'\\') {
        return Some(Cow::Borrowed(&text[1..text.len() - 1]));
    }
    if matches!(b.first(), Some(b'-' | b'0'..=b'9' | b't' | b'f')) && is_canonical(b) {
        return Some(Cow::Borrowed(text));
    }
    let v: Value = serde_json::from_str(text).ok()?;
    scalar_text(&v).map(Cow::Owned)
}

/// Deepest nesting the fast path follows (serde_json's own limit is 128).
const MAX_DEPTH: usize = 64;

/// Whether `text` is exactly what [`canonical_json`] prints for it: no whitespace, object
/// keys strictly increasing (sorted, no duplicates), strings without escapes, numbers that
/// are integers serde_json prints back unchanged, and `true`/`false`/`null`.
fn is_canonical(text: &[u8]) -> bool {
    canonical_value(text, 0, 0) == Some(text.len())
}

/// End of the canonical value starting at `i`, or None when it is not canonical.
fn canonical_value(s: &[u8], i: usize, depth: usize) -> Option<usize> {
    if depth > MAX_DEPTH {
        return None;
    }
    match *s.get(i)? {
        b'{' => {
            let mut i = i + 1;
            if s.get(i) == Some(&b'}') {
                return Some(i + 1);
            }
            let mut prev: Option<&[u8]> = None;
            loop {
                let end = plain_string(s, i)?;
                let key = &s[i + 1..end - 1];
                if prev.is_some_and(|p| p >= key) {
                    return None;
                }
                prev = Some(key);
                if s.get(end) != Some(&b':') {
                    return None;
                }
                i = canonical_value(s, end + 1, depth + 1)?;
                match s.get(i)? {
                    b',' => i += 1,
                    b'}' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'[' => {
            let mut i = i + 1;
            if s.get(i) == Some(&b']') {
                return Some(i + 1);
            }
            loop {
                i = canonical_value(s, i, depth + 1)?;
                match s.get(i)? {
                    b',' => i += 1,
                    b']' => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'"' => plain_string(s, i),
        b't' => s[i..].starts_with(b"true").then_some(i + 4),
        b'f' => s[i..].starts_with(b"false").then_some(i + 5),
        b'n' => s[i..].starts_with(b"null").then_some(i + 4),
        b'-' | b'0'..=b'9' => {
            let digits_at = i + usize::from(s[i] == b'-');
            let digits = s[digits_at..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count();
            let end = digits_at + digits;
            // `-0` prints as `-0.0`, a leading zero is invalid JSON, 19 digits may leave i64,
            // and fractions or exponents are reformatted: all of them take the slow path.
            let plain = digits > 0
                && digits <= 18
                && (s[digits_at] != b'0' || (digits == 1 && digits_at == i))
                && !matches!(s.get(end), Some(b'.' | b'e' | b'E'));
            plain.then_some(end)
        }
        _ => None,
    }
}

/// End of a string starting at `i` that holds no escape and no control character.
fn plain_string(s: &[u8], i: usize) -> Option<usize> {
    if s.get(i) != Some(&b'"') {
        return None;
    }
    let len = s[i + 1..]
        .iter()
        .position(|c| *c == b'"' || *c == b'\\' || *c < 0x20)?;
    let end = i + 1 + len;
    (s[end] == b'"').then_some(end + 1)
}

/// Text of a scalar JSON value (`"abc"` -> `abc`, `42` -> `42`, null -> None).
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_sorts_keys_recursively() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":{"z":[2,{"y":1,"x":0}],"c":"q"}}"#).unwrap();
        assert_eq!(
            canonical_json(&v),
            r#"{"a":{"c":"q","z":[2,{"x":0,"y":1}]},"b":1}"#
        );
    }

    /// The fast path and the `Value` path print the same bytes, whichever one runs.
    #[test]
    fn canonical_raw_equals_the_value_form() {
        let cases = [
            r#"{}"#,
            r#"{"env":"prod"}"#,
            r#"{"ServiceType":"Standard_D2s_v3","ImageType":"Canonical"}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"b":[1,-2,0,{"y":null,"x":true}],"a":"q"}"#,
            r#"{ "a" : 1 }"#,
            r#"{"a":"\u0041\n\"","b":"é\u00e9"}"#,
            r#"{"n":-0,"m":1.50,"e":1E5,"big":123456789012345678901234,"z":007}"#,
            r#"{"n":-7,"m":0,"k":123456789012345678}"#,
            r#"[1,2,3]"#,
            r#""plain""#,
            r#"12"#,
            r#"{"é":1,"e":2}"#,
            r#"{"a":{"b":{"c":{"d":[[[]]]}}}}"#,
        ];
        for text in cases {
            let slow = serde_json::from_str::<Value>(text).map(|v| canonical_json(&v));
            let Ok(slow) = slow else { continue };
            assert_eq!(canonical_raw(text), slow, "{text}");
        }
        assert!(matches!(
            canonical_raw(r#"{"env":"prod"}"#),
            Cow::Borrowed(_)
        ));
        assert!(matches!(canonical_raw(r#"{"b":1,"a":2}"#), Cow::Owned(_)));
    }

    #[test]
    fn scalar_raw_equals_the_value_form() {
        for text in [
            r#""abc""#,
            r#""a\"b""#,
            "42",
            "-3",
            "1.50",
            "1e3",
            "true",
            "null",
            r#"{"b":1,"a":2}"#,
            "[1, 2]",
            r#""""#,
        ] {
            let raw: Box<RawValue> = serde_json::from_str(text).unwrap();
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(
                scalar_raw(&raw).map(Cow::into_owned),
                scalar_text(&v),
                "{text}"
            );
        }
    }

    #[test]
    fn numbers_from_text() {
        let r: Box<RawValue> = serde_json::from_str("1.5E-7").unwrap();
        assert_eq!(decimal_from_raw(&r).unwrap().to_string(), "0.0000001500");
        let r: Box<RawValue> = serde_json::from_str("\"12,5\"").unwrap();
        assert!(decimal_from_raw(&r).is_err());
        let r: Box<RawValue> = serde_json::from_str("0.217790327034891").unwrap();
        assert_eq!(decimal_from_raw(&r).unwrap().to_string(), "0.2177903270");
        let r: Box<RawValue> = serde_json::from_str("true").unwrap();
        assert!(decimal_from_raw(&r).is_err());
    }
}
