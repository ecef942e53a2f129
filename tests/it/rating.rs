//! Rating end to end on `sample_data/`: totals per partition equal the hand-computed ones in
//! `sample_data/README.md` §E.5, quarantine by reason §E.2, reruns are byte-identical.

use crate::common::*;

#[test]
fn sample_partition_totals_match_hand_computed_values() {
    let dir = rated_sample();
    let m = &manifests(dir.path())[0];
    assert_eq!(m.command, "rate");
    let mut got: Vec<(String, u64, String)> = m
        .partitions
        .iter()
        .map(|p| {
            (
                p.path.clone(),
                p.rows,
                p.billed_cost.clone().unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    let want = [
        (
            "costs/org=adatum/month=2026-01/usage-0.parquet",
            46,
            "55.9165640000",
        ),
        (
            "costs/org=adatum/month=2026-02/usage-0.parquet",
            45,
            "78.1268000000",
        ),
        (
            "costs/org=contoso/month=2026-01/usage-0.parquet",
            222,
            "296.6767783893",
        ),
        (
            "costs/org=contoso/month=2026-02/usage-0.parquet",
            105,
            "139.4206523897",
        ),
        (
            "costs/org=fabrikam/month=2026-01/usage-0.parquet",
            63,
            "162972.8270082133",
        ),
    ];
    let want: Vec<(String, u64, String)> = want
        .iter()
        .map(|(p, r, b)| (p.to_string(), *r, b.to_string()))
        .collect();
    assert_eq!(got, want);
    assert_eq!(
        (m.counts["staged"], m.counts["rated"], m.quarantined_total()),
        (589, 481, 108)
    );
}
