//! The benchmark's correctness check (issue 8) as an ordinary test: a generated month of 100 k
//! records, rated by cspcost and by the DuckDB SQL peer of `benches/duckdb_peer.py` (the
//! same rating written as SQL, run from the `CSPCOST_PYTHON` venv), must give the same
//! partitions, the same rows in the same order, and the same value in every column but
//! `x_RunId`. No timing here: `make bench` measures.

use crate::common::*;
use std::collections::BTreeMap;

/// The benchmark generator, included as it is (`cargo run --example generate` would need a
/// second build from inside the test).
#[allow(dead_code)]
#[path = "../../examples/generate.rs"]
pub mod generate;

const MONTH: &str = "2026-01";

#[test]
fn duckdb_sql_rating_equals_cspcost_row_by_row() {
    let Some(py) = interop_python("bench check") else {
        return;
    };
    let dir = lake();
    let input = dir.path().join("input");
    // 15 tenants with one subscription each: three organizations (USD, EUR -2 %, JPY 0 %) and
    // ladders long enough to cross every tier minimum but the top one; corner cases mixed in.
    let generated = generate::run(&generate::Opts {
        records: 100_000,
        out: input.clone(),
        tenants: 15,
        subs_per_tenant: 1,
        edge_cases: true,
        ..generate::Opts::default()
    })
    .expect("generate");
    assert!(generated.records >= 100_000);
    let l = arg(&dir.path().join("lake"));
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&input.join("reference")),
    ]);
    ok([
        "ingest",
        "prices",
        "--lake",
        &l,
        &arg(&input.join("prices")),
    ]);
    ok(["ingest", "usage", "--lake", &l, &arg(&input.join("usage"))]);
    ok(["rate", "--lake", &l, "--month", MONTH]);

    let peer = dir.path().join("peer");
    let out = std::process::Command::new(&py)
        .arg(root().join("benches/duckdb_peer.py"))
        .args(["rate", &l, MONTH, &arg(&peer)])
        .output()
        .expect("run the DuckDB peer");
    assert!(
        out.status.success(),
        "duckdb_peer.py rate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The corner cases happened: cspcost quarantined them, so neither side rated them.
    let reasons = render(
        &dir.path().join("lake"),
        &format!("quarantine/stage=rate/month={MONTH}/part-0.parquet"),
        &["reason_code"],
    );
    for reason in [
        "NEGATIVE_QUANTITY",
        "NO_PRICE",
        "UNIT_MISMATCH",
        "UNMAPPED_TENANT",
    ] {
        assert!(reasons.iter().any(|r| r == reason), "no {reason} record");
    }

    // Same partitions, same files.
    let costs = dir.path().join("lake/costs");
    let files = parquet_files(&costs);
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(parquet_files(&peer), files);

    let names: Vec<String> = cspcost::emit::costs::cost_schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .filter(|n| n != cspcost::emit::costs::col::RUN_ID)
        .collect();
    let at = |name: &str| names.iter().position(|n| n == name).unwrap();
    let (file_col, row_col) = (at("x_SourceFile"), at("x_SourceRow"));
    let mut rated = 0;
    for f in &files {
        let ours = cost_rows(&costs.join(f));
        let theirs = cost_rows(&peer.join(f));
        // Same rows in the same order (outputs.md: sorted inside a partition)...
        let keys = |rows: &[Vec<String>]| -> Vec<(String, String)> {
            rows.iter()
                .map(|r| (r[file_col].clone(), r[row_col].clone()))
                .collect()
        };
        assert_eq!(ours.len(), theirs.len(), "{f}: row counts");
        assert!(
            keys(&ours) == keys(&theirs),
            "{f}: rows or their order differ"
        );
        // ...with the same value in every column.
        let mut differing: BTreeMap<&str, (usize, String)> = BTreeMap::new();
        for (a, b) in ours.iter().zip(&theirs) {
            for (c, name) in names.iter().enumerate() {
                if a[c] != b[c] {
                    let e = differing.entry(name).or_insert((
                        0,
                        format!(
                            "{}#{}: cspcost {} / DuckDB {}",
                            a[file_col], a[row_col], a[c], b[c]
                        ),
                    ));
                    e.0 += 1;
                }
            }
        }
        assert!(
            differing.is_empty(),
            "{f}: columns differ (count, first row): {differing:#?}"
        );
        rated += ours.len();
    }
    // Every generated record is rated or quarantined: 100 k records, a few hundred of them
    // quarantined at ingest or rating.
    assert!(
        rated > 95_000 && rated < generated.records as usize,
        "{rated} rated"
    );
}
