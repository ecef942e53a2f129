//! Small JSON helpers shared by the parsers: canonical JSON (sorted keys, for natural keys and
//! stable output), and numbers read from their *text*.

use crate::model::decimal::{Dec10, DecimalError};
use serde_json::value::RawValue;
use serde_json::Value;

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
