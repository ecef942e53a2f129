//! Staged reference tables (`staged/reference/<table>.parquet`, inputs.md §3 and billing.md):
//! one Parquet file per table, written whole by `ingest reference` and `tenants add|remove`,
//! read by every stage as a typed [`Reference`]. The table definitions and types are in
//! [`crate::model::reference`].

use crate::error::Result;
use crate::model::decimal::Dec10;
use crate::model::reference::{Cell, ColKind, RefRows, RefTableDef, Reference};
use crate::model::schema::*;
use crate::model::time::{date_to_days, days_to_date};
use crate::store::Lake;
use arrow::array::{Array, RecordBatch};
use arrow::datatypes::{Field, Schema};
use std::sync::Arc;

fn table_path(def: &RefTableDef) -> String {
    format!("staged/reference/{}.parquet", def.name)
}

/// Write a whole reference table.
pub fn save_table(lake: &Lake, def: &RefTableDef, rows: &RefRows) -> Result<()> {
    let fields: Vec<Field> = def
        .columns
        .iter()
        .map(|(n, k, _)| match k {
            ColKind::Str => f_str(n, false),
            ColKind::Dec => f_dec(n, true),
            ColKind::Date => f_date(n, true),
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let cols = def
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, k, _))| match k {
            ColKind::Str => a_str(rows.iter().map(|r| match &r[i] {
                Cell::Str(s) => Some(s.as_str()),
                _ => Some(""),
            })),
            ColKind::Dec => a_dec(rows.iter().map(|r| match &r[i] {
                Cell::Dec(d) => d.map(|d| d.0),
                _ => None,
            })),
            ColKind::Date => a_date(rows.iter().map(|r| match &r[i] {
                Cell::Date(d) => d.map(date_to_days),
                _ => None,
            })),
        })
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), cols)?;
    lake.put_parquet(&table_path(def), schema, &[batch], vec![])
}

/// Read a whole reference table (empty when never ingested).
pub fn load_table(lake: &Lake, def: &RefTableDef) -> Result<RefRows> {
    let Some(batches) = lake.get_parquet(&table_path(def))? else {
        return Ok(Vec::new());
    };
    let mut rows = Vec::new();
    for b in &batches {
        let c = Cols(b);
        for r in 0..b.num_rows() {
            let mut row = Vec::with_capacity(def.columns.len());
            for (name, kind, required) in def.columns {
                // An optional column added later (organizations' `reseller_id`) is absent
                // from tables staged before it existed: read it as empty.
                if !required && b.column_by_name(name).is_none() {
                    row.push(Cell::empty(*kind));
                    continue;
                }
                row.push(match kind {
                    ColKind::Str => Cell::Str(c.str(name)?.value(r).to_string()),
                    ColKind::Dec => Cell::Dec(opt_dec(c.dec(name)?, r).map(Dec10)),
                    ColKind::Date => {
                        let a = c.date(name)?;
                        Cell::Date((!a.is_null(r)).then(|| days_to_date(a.value(r))))
                    }
                });
            }
            rows.push(row);
        }
    }
    Ok(rows)
}

impl Reference {
    /// Load every reference table from the lake.
    pub fn load(lake: &Lake) -> Result<Reference> {
        Reference::from_tables(|def| load_table(lake, def))
    }
}
