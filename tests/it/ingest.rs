//! Ingest end to end: counts balance, restated vs unchanged, idempotent re-ingest, reason codes.

use crate::common::*;

#[test]
fn sample_dumps_count_new_restated_unchanged_and_quarantined() {
    let dir = lake();
    ingest_sample(dir.path());
    let ms = manifests(dir.path());
    let usage: Vec<_> = ms.iter().filter(|m| m.command == "ingest usage").collect();
    assert_eq!(usage.len(), 2);
    // newest first: dump 2 then dump 1 (hand-checked in sample_data/README.md §E.1)
    let (d2, d1) = (usage[0], usage[1]);
    let c = |m: &cspcost::emit::manifest::Manifest, k: &str| m.counts.get(k).copied().unwrap_or(0);
    assert_eq!(
        (
            c(d1, "read"),
            c(d1, "new"),
            c(d1, "restated"),
            c(d1, "unchanged")
        ),
        (241, 233, 0, 0)
    );
    let q1: Vec<(String, u64)> = d1.quarantined.clone().into_iter().collect();
    assert_eq!(
        q1,
        vec![
            ("BAD_ID".to_string(), 1),
            ("BAD_NUMBER".to_string(), 1),
            ("BAD_TIMESTAMP".to_string(), 2),
            ("DUPLICATE_RECORD".to_string(), 2),
            ("MALFORMED".to_string(), 2)
        ]
    );
    assert_eq!(
        (
            c(d2, "read"),
            c(d2, "new"),
            c(d2, "restated"),
            c(d2, "unchanged"),
            d2.quarantined_total()
        ),
        (396, 356, 3, 37, 0)
    );
}
