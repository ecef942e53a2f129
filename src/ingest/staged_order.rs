//! The staged order of usage rows (spec README, Scale): (subscription, meter, start, end,
//! resource URI, additional info, key hash), the rating order of the default scope inside a
//! ladder, so that rating streams a partition without sorting it.
//!
//! Sorting compares rows n log n times, and compared as strings most comparisons go through
//! two equal 36-byte IDs before they reach a difference: `memcmp` was a fifth of the CPU of
//! ingest's merge of a month of one subscription. [`sort_rows`] first replaces each string by
//! its rank among the distinct values of the rows sorted, once per row, then sorts integers.
//! Ranks keep the order of the strings, so the order is the one [`OrderKeys::at`] gives.

use crate::error::Result;
use crate::model::schema::hash_at;
use arrow::array::{RecordBatch, StringArray};
use rayon::prelude::*;
use std::collections::HashMap;
use xxhash_rust::xxh3::Xxh3Builder;

/// The columns of the staged order, owned (cheap clones of one batch's arrays), so that a
/// merge can hold them next to the batch.
pub(super) struct OrderKeys {
    subscription: StringArray,
    meter: StringArray,
    start: arrow::array::TimestampMicrosecondArray,
    end: arrow::array::TimestampMicrosecondArray,
    uri: StringArray,
    addl: StringArray,
    key: arrow::array::FixedSizeBinaryArray,
}

impl OrderKeys {
    pub(super) fn of(b: &RecordBatch) -> Result<OrderKeys> {
        let c = super::usage::MergeCols::of(b)?;
        Ok(OrderKeys {
            subscription: c.subscription.clone(),
            meter: c.meter.clone(),
            start: c.start.clone(),
            end: c.end.clone(),
            uri: c.uri.clone(),
            addl: c.addl.clone(),
            key: c.key.clone(),
        })
    }

    /// The staged order of row `i`.
    #[inline]
    pub(super) fn at(&self, i: usize) -> (&str, &str, i64, i64, &str, &str, u128) {
        (
            self.subscription.value(i),
            self.meter.value(i),
            self.start.value(i),
            self.end.value(i),
            self.uri.value(i),
            self.addl.value(i),
            hash_at(&self.key, i),
        )
    }
}

/// The staged order of one row with its strings replaced by ranks. Field order is
/// comparison order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Ranked {
    subscription: u32,
    meter: u32,
    start: i64,
    end: i64,
    uri: u32,
    addl: u32,
    key: u128,
}

/// Sort `(batch, row)` references to the rows of `batches` into the staged order.
pub(super) fn sort_rows(batches: &[RecordBatch], rows: &mut Vec<(usize, usize)>) -> Result<()> {
    let keys: Vec<OrderKeys> = batches.iter().map(OrderKeys::of).collect::<Result<_>>()?;
    let text: [fn(&OrderKeys) -> &StringArray; 4] =
        [|k| &k.subscription, |k| &k.meter, |k| &k.uri, |k| &k.addl];
    let picks: &[(usize, usize)] = rows;
    let ranks: Vec<Vec<u32>> = text
        .par_iter()
        .map(|column| rank_column(picks, |(b, i)| column(&keys[b]).value(i)))
        .collect();
    let mut ranked: Vec<(Ranked, u32)> = picks
        .iter()
        .enumerate()
        .map(|(n, &(b, i))| {
            let k = &keys[b];
            let r = Ranked {
                subscription: ranks[0][n],
                meter: ranks[1][n],
                start: k.start.value(i),
                end: k.end.value(i),
                uri: ranks[2][n],
                addl: ranks[3][n],
                key: hash_at(&k.key, i),
            };
            (r, n as u32)
        })
        .collect();
    drop(ranks);
    // Keys are unique among the rows a merge sorts (duplicates are quarantined before), so
    // an unstable sort gives the one order there is; the position breaks ties otherwise.
    ranked.par_sort_unstable();
    let sorted = ranked.iter().map(|&(_, n)| picks[n as usize]).collect();
    *rows = sorted;
    Ok(())
}

/// The rank of each pick's value among the distinct values of all picks (equal values, equal
/// ranks). Neighbouring rows often share a value, so a repeat skips the hash lookup.
fn rank_column<'a>(
    picks: &[(usize, usize)],
    value: impl Fn((usize, usize)) -> &'a str,
) -> Vec<u32> {
    let mut ids: HashMap<&'a str, u32, Xxh3Builder> = HashMap::with_hasher(Xxh3Builder::new());
    let mut distinct: Vec<&'a str> = Vec::new();
    let mut last: Option<(&'a str, u32)> = None;
    let mut of_pick: Vec<u32> = Vec::with_capacity(picks.len());
    for &p in picks {
        let s = value(p);
        let id = match last {
            Some((l, id)) if l == s => id,
            _ => *ids.entry(s).or_insert_with(|| {
                distinct.push(s);
                distinct.len() as u32 - 1
            }),
        };
        last = Some((s, id));
        of_pick.push(id);
    }
    let mut by_value: Vec<u32> = (0..distinct.len() as u32).collect();
    by_value.sort_unstable_by_key(|&id| distinct[id as usize]);
    let mut rank_of_id = vec![0u32; distinct.len()];
    for (rank, &id) in by_value.iter().enumerate() {
        rank_of_id[id as usize] = rank as u32;
    }
    for id in &mut of_pick {
        *id = rank_of_id[*id as usize];
    }
    of_pick
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::usage::usage_schema;
    use arrow::array::{ArrayRef, FixedSizeBinaryArray, TimestampMicrosecondArray};
    use proptest::prelude::*;
    use std::sync::Arc;

    type Row<'a> = (&'a str, &'a str, i64, i64, &'a str, &'a str, u128);

    fn strings<'a>(rows: &[Row<'a>], pick: impl Fn(&Row<'a>) -> &'a str) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(pick)))
    }

    /// A batch of the usage columns whose order columns are the given values (the other
    /// columns are nulls, so all are nullable here: the order does not read them).
    fn batch(rows: &[Row]) -> RecordBatch {
        let usage = usage_schema();
        let fields: Vec<_> = usage
            .fields()
            .iter()
            .map(|f| f.as_ref().clone().with_nullable(true))
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|f| -> ArrayRef {
                match f.name().as_str() {
                    "subscription_id" => strings(rows, |r| r.0),
                    "meter_id" => strings(rows, |r| r.1),
                    "resource_uri" => strings(rows, |r| r.4),
                    "additional_info" => strings(rows, |r| r.5),
                    "usage_start" => Arc::new(
                        TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.2))
                            .with_timezone("UTC"),
                    ),
                    "usage_end" => Arc::new(
                        TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.3))
                            .with_timezone("UTC"),
                    ),
                    n if n == crate::model::usage::col::KEY_HASH => {
                        let bytes: Vec<u8> = rows.iter().flat_map(|r| r.6.to_be_bytes()).collect();
                        Arc::new(FixedSizeBinaryArray::new(16, bytes.into(), None))
                    }
                    _ => arrow::array::new_null_array(f.data_type(), rows.len()),
                }
            })
            .collect();
        RecordBatch::try_new(schema, columns).unwrap()
    }

    fn row() -> impl Strategy<Value = (String, String, i64, i64, String, String, u128)> {
        // Few distinct values, so that ties on the leading columns are the common case, and
        // prefixes of one another ("", "a", "ab") so that byte order is what decides.
        let text = prop::sample::select(vec!["", "a", "ab", "b", "B", "é", "/subs/x/rg"]);
        (
            prop::sample::select(vec!["s1", "s2"]),
            text.clone(),
            0i64..3,
            0i64..3,
            text.clone(),
            text,
            any::<u128>(),
        )
            .prop_map(|(s, m, a, b, u, x, k)| (s.into(), m.into(), a, b, u.into(), x.into(), k))
    }

    proptest! {
        #[test]
        fn ranked_sort_is_the_order_of_the_strings(
            parts in prop::collection::vec(prop::collection::vec(row(), 0..40), 1..4),
        ) {
            let batches: Vec<RecordBatch> = parts
                .iter()
                .map(|p| {
                    let r: Vec<_> = p
                        .iter()
                        .map(|r| (r.0.as_str(), r.1.as_str(), r.2, r.3, r.4.as_str(), r.5.as_str(), r.6))
                        .collect();
                    batch(&r)
                })
                .collect();
            let mut rows: Vec<(usize, usize)> = parts
                .iter()
                .enumerate()
                .flat_map(|(b, p)| (0..p.len()).map(move |i| (b, i)))
                .rev()
                .collect();
            let keys: Vec<OrderKeys> = batches.iter().map(|b| OrderKeys::of(b).unwrap()).collect();
            let mut expected = rows.clone();
            expected.sort_by(|x, y| keys[x.0].at(x.1).cmp(&keys[y.0].at(y.1)));
            sort_rows(&batches, &mut rows).unwrap();
            let order = |v: &[(usize, usize)]| -> Vec<_> {
                v.iter().map(|&(b, i)| keys[b].at(i)).collect()
            };
            prop_assert_eq!(order(&rows), order(&expected));
        }
    }
}
