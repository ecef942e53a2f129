//! Enum option values (tier scope, extract grain, asset status, log format): one [`OptionEnum`] per
//! enum, whose words come from its clap [`ValueEnum`] derive, so that `--help`, the command
//! line, a pipeline file and the "expected a, b or c" sentence all read the same list.
//!
//! A value is a [`Choice`]: the enum, or the unknown text as written. Clap keeps unknown text
//! instead of stopping at it, so that the stage's `validate` reports it together with every
//! other problem of the command, in the one sentence a pipeline file gets too.

use clap::builder::{PossibleValue, TypedValueParser, ValueParserFactory};
use clap::ValueEnum;
use std::marker::PhantomData;

/// An enum an option names by a word (`subscription`, `daily`, `active`).
pub trait OptionEnum: ValueEnum + Clone + Send + Sync + 'static {
    /// `text` as one of the values; by default exactly as [`ValueEnum`] spells them.
    fn from_text(text: &str) -> Option<Self> {
        Self::from_str(text, false).ok()
    }

    /// The values' words, in declaration order.
    fn words() -> Vec<String> {
        Self::value_variants()
            .iter()
            .filter_map(|v| v.to_possible_value())
            .map(|p| p.get_name().to_string())
            .collect()
    }

    /// `expected a, b or c`: what [`Choice::value`] says of an unknown word.
    fn expected() -> String {
        let words = Self::words();
        match words.split_last() {
            Some((last, rest)) if !rest.is_empty() => {
                format!("expected {} or {last}", rest.join(", "))
            }
            _ => format!("expected {}", words.join("")),
        }
    }
}

/// An enum option as written: a known value, or text that names none.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Choice<T> {
    /// One of the enum's values.
    Known(T),
    /// Text that is none of them, kept for the problem report.
    Unknown(String),
}

impl<T: OptionEnum> Choice<T> {
    /// The one parse of the command line and of pipeline files.
    pub fn parse(text: &str) -> Choice<T> {
        match T::from_text(text) {
            Some(v) => Choice::Known(v),
            None => Choice::Unknown(text.to_string()),
        }
    }

    /// The value, or the problem without the field's name: `'weekly': expected period or
    /// daily` (the caller puts `--grain` or `bad.toml:7: reconcile.grain` before it).
    pub fn value(&self) -> Result<T, String> {
        match self {
            Choice::Known(v) => Ok(v.clone()),
            Choice::Unknown(text) => Err(format!("'{text}': {}", T::expected())),
        }
    }
}

impl<T: OptionEnum> From<T> for Choice<T> {
    fn from(v: T) -> Choice<T> {
        Choice::Known(v)
    }
}

impl<T: OptionEnum> From<&str> for Choice<T> {
    fn from(text: &str) -> Choice<T> {
        Choice::parse(text)
    }
}

/// Pipeline files: any string is a [`Choice`]; an unknown one is reported by `validate`
/// with the file's line, like every other problem of the file.
impl<'de, T: OptionEnum> serde::Deserialize<'de> for Choice<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Choice<T>, D::Error> {
        let text = String::deserialize(d)?;
        Ok(Choice::parse(&text))
    }
}

/// Clap's parser of a [`Choice`]: lists the values in `--help`, never refuses a word.
#[derive(Clone, Debug)]
pub struct ChoiceParser<T>(PhantomData<T>);

impl<T: OptionEnum> TypedValueParser for ChoiceParser<T> {
    type Value = Choice<T>;

    fn parse_ref(
        &self,
        cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<Choice<T>, clap::Error> {
        let text = clap::builder::StringValueParser::new().parse_ref(cmd, arg, value)?;
        Ok(Choice::parse(&text))
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(possible_values::<T>()))
    }
}

/// The values as `--help` lists them: `[possible values: a, b, c]` after the flag's line.
/// Without the variants' doc lines, which would turn every `--help` into its long layout.
fn possible_values<T: OptionEnum>() -> impl Iterator<Item = PossibleValue> {
    T::value_variants()
        .iter()
        .filter_map(ValueEnum::to_possible_value)
        .map(|p| p.help(None::<&'static str>))
}

/// Clap's parser of a flag whose unknown word clap itself refuses (`--log-format`: it
/// is read before any command runs), with clap's `invalid value` message and the values.
pub fn strict_parser<T: OptionEnum>() -> impl TypedValueParser<Value = T> {
    clap::builder::PossibleValuesParser::new(possible_values::<T>())
        .try_map(|text| T::from_str(&text, false))
}

impl<T: OptionEnum> ValueParserFactory for Choice<T> {
    type Parser = ChoiceParser<T>;

    fn value_parser() -> ChoiceParser<T> {
        ChoiceParser(PhantomData)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tier::TierScope;

    #[test]
    fn known_and_unknown_words() {
        assert_eq!(
            Choice::<TierScope>::parse("customer"),
            Choice::Known(TierScope::Customer)
        );
        assert_eq!(
            Choice::<TierScope>::parse("galaxy").value(),
            Err("'galaxy': expected subscription, customer or organization".to_string())
        );
        assert_eq!(
            TierScope::words(),
            ["subscription", "customer", "organization"]
        );
    }
}
