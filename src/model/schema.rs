//! Arrow column helpers shared by every table: builders from Rust values and typed readers
//! that name the missing column instead of panicking. Money and quantities are
//! `Decimal128(38,10)`, instants `Timestamp(µs, "UTC")`, dates `Date32` (outputs.md).

use crate::error::{Error, Result};
use crate::model::decimal::{PRECISION, SCALE};
use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, FixedSizeBinaryArray, Int64Array,
    RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, TimeUnit};
use std::sync::Arc;

/// `Decimal128(38,10)`.
pub fn decimal_type() -> DataType {
    DataType::Decimal128(PRECISION, SCALE as i8)
}

/// `Timestamp(µs, "UTC")`.
pub fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// Field helpers, so schemas read as a list of `(name, kind, nullable)`.
pub fn f_str(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}
/// A `Decimal128(38,10)` field.
pub fn f_dec(name: &str, nullable: bool) -> Field {
    Field::new(name, decimal_type(), nullable)
}
/// A UTC timestamp field.
pub fn f_ts(name: &str, nullable: bool) -> Field {
    Field::new(name, timestamp_type(), nullable)
}
/// A date field.
pub fn f_date(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Date32, nullable)
}
/// An int64 field.
pub fn f_i64(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Int64, nullable)
}
/// A boolean field.
pub fn f_bool(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Boolean, nullable)
}
/// A 16-byte binary field (hashes).
pub fn f_hash128(name: &str) -> Field {
    Field::new(name, DataType::FixedSizeBinary(16), false)
}

/// String column.
pub fn a_str<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<StringArray>())
}
/// Decimal column from raw scale-10 integers.
pub fn a_dec(values: impl IntoIterator<Item = Option<i128>>) -> ArrayRef {
    let arr: Decimal128Array = values.into_iter().collect();
    Arc::new(
        arr.with_precision_and_scale(PRECISION, SCALE as i8)
            .expect("38,10 is a valid decimal type"),
    )
}
/// UTC timestamp column from microseconds.
pub fn a_ts(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    let arr: TimestampMicrosecondArray = values.into_iter().collect();
    Arc::new(arr.with_timezone("UTC"))
}
/// Date column from days since epoch.
pub fn a_date(values: impl IntoIterator<Item = Option<i32>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Date32Array>())
}
/// Int64 column.
pub fn a_i64(values: impl IntoIterator<Item = Option<i64>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<Int64Array>())
}
/// Boolean column.
pub fn a_bool(values: impl IntoIterator<Item = Option<bool>>) -> ArrayRef {
    Arc::new(values.into_iter().collect::<BooleanArray>())
}
/// 16-byte hash column.
pub fn a_hash128(values: impl IntoIterator<Item = u128>) -> ArrayRef {
    let bytes: Vec<[u8; 16]> = values.into_iter().map(|v| v.to_be_bytes()).collect();
    Arc::new(FixedSizeBinaryArray::try_from_iter(bytes.iter()).expect("16-byte values"))
}

fn column<'a, T: 'static>(batch: &'a RecordBatch, name: &str, what: &str) -> Result<&'a T> {
    let col = batch.column_by_name(name).ok_or_else(|| Error::Schema {
        column: name.to_string(),
        expected: what.to_string(),
    })?;
    col.as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| Error::Schema {
            column: name.to_string(),
            expected: what.to_string(),
        })
}

/// Typed read access to the columns of a batch.
pub struct Cols<'a>(pub &'a RecordBatch);

impl<'a> Cols<'a> {
    /// A string column.
    pub fn str(&self, name: &str) -> Result<&'a StringArray> {
        column(self.0, name, "string")
    }
    /// A decimal column.
    pub fn dec(&self, name: &str) -> Result<&'a Decimal128Array> {
        column(self.0, name, "decimal(38,10)")
    }
    /// A timestamp column.
    pub fn ts(&self, name: &str) -> Result<&'a TimestampMicrosecondArray> {
        column(self.0, name, "timestamp(us, UTC)")
    }
    /// A date column.
    pub fn date(&self, name: &str) -> Result<&'a Date32Array> {
        column(self.0, name, "date32")
    }
    /// An int64 column.
    pub fn i64(&self, name: &str) -> Result<&'a Int64Array> {
        column(self.0, name, "int64")
    }
    /// A boolean column.
    pub fn bool(&self, name: &str) -> Result<&'a BooleanArray> {
        column(self.0, name, "boolean")
    }
    /// A 16-byte hash column.
    pub fn hash128(&self, name: &str) -> Result<&'a FixedSizeBinaryArray> {
        column(self.0, name, "fixed_size_binary(16)")
    }
}

/// Optional string at `i`.
pub fn opt_str(a: &StringArray, i: usize) -> Option<&str> {
    (!a.is_null(i)).then(|| a.value(i))
}
/// Optional decimal at `i`.
pub fn opt_dec(a: &Decimal128Array, i: usize) -> Option<i128> {
    (!a.is_null(i)).then(|| a.value(i))
}
/// Maps keyed by a record's key hash ([`hash_at`]). The table hashes the digest again with
/// `ahash`'s keyed hash: SipHash, the standard one, costs ingest's merge several per cent, and
/// no hash at all would let a crafted dump whose digests share their low bits degrade every
/// lookup (the key is unseeded xxh3 of the input).
pub type KeyMap<V> = std::collections::HashMap<u128, V, ahash::RandomState>;
/// A set of key hashes; see [`KeyMap`].
pub type KeySet = std::collections::HashSet<u128, ahash::RandomState>;
/// Hash at `i`.
pub fn hash_at(a: &FixedSizeBinaryArray, i: usize) -> u128 {
    let mut b = [0u8; 16];
    b.copy_from_slice(a.value(i));
    u128::from_be_bytes(b)
}
