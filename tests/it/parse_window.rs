//! Ingest parses files on every core, a window at a time (issue 16): the staged result must be
//! the one of a sequential read, so "the first record is kept" still means first in path
//! order, across windows and within one.

use crate::common::*;

#[test]
fn duplicates_across_parse_windows_keep_the_first_file() {
    let dir = lake();
    let src = lake();
    let t = "686adbc4-fd3f-4688-b527-617394bf68af";
    let s = "6ad487b8-95fe-47a5-92c2-b86c364426b3";
    // 40 files (more than one window of 4 x threads on this machine's cores): file k holds the
    // record of day k, except files 2, 17 and 39, which repeat file 1's key with another
    // quantity; file 3 is an API page (upper-case GUIDs, an escaped string) among NDJSON.
    let rec = |day: u32, q: &str, uri: &str| {
        format!(
            r#"{{"customerTenantId":"{t}","subscriptionId":"{s}","usageStartTime":"2026-01-{day:02}T00:00:00Z","usageEndTime":"2026-01-{day:02}T01:00:00Z","resource":{{"id":"8A09FF56-1B50-410F-A959-30227B19001E","name":"Meter \u0041"}},"quantity":{q},"unit":"1 GB","instanceData":{{"resourceUri":"{uri}","additionalInfo":{{"b":1,"a":"x"}}}}}}"#
        )
    };
    for k in 1..=40u32 {
        let text = match k {
            2 | 17 | 39 => rec(1, &format!("{k}.5"), "/r/1"),
            3 => format!(
                r#"{{"items":[{}]}}"#,
                rec(3, "3", "/r/3").replace(t, &t.to_uppercase())
            ),
            _ => rec((k - 1) % 28 + 1, &k.to_string(), &format!("/r/{k}")),
        };
        write(src.path(), &format!("f{k:02}.ndjson"), &text);
    }
    ok([
        "ingest",
        "usage",
        "--lake",
        &arg(dir.path()),
        &arg(src.path()),
    ]);
    let m = manifests(dir.path()).pop().unwrap();
    assert_eq!(m.counts["read"], 40);
    assert_eq!(m.counts["new"], 37);
    assert_eq!(m.quarantined.get("DUPLICATE_RECORD").copied(), Some(3));
    let rows = render(
        dir.path(),
        &month_file(dir.path(), "2026-01"),
        &[
            "quantity",
            "source_file",
            "customer_tenant_id",
            "meter_name",
            "additional_info",
        ],
    );
    assert_eq!(rows.len(), 37);
    let first = rows.iter().find(|r| r.contains("f01.ndjson")).unwrap();
    assert!(
        first.starts_with("1.0000000000|")
            && first.ends_with(&format!("|{t}|Meter A|{{\"a\":\"x\",\"b\":1}}")),
        "{first}"
    );
    assert!(rows
        .iter()
        .any(|r| r.contains("f03.ndjson") && r.contains(&format!("|{t}|"))));
    let run = m.run_id;
    let dups = render(
        dir.path(),
        &format!("quarantine/stage=ingest/run={run}/part-0.parquet"),
        &["reason_code", "source_file"],
    );
    let dup_files: Vec<&str> = dups.iter().map(|d| d.rsplit('/').next().unwrap()).collect();
    assert_eq!(dup_files, ["f02.ndjson", "f17.ndjson", "f39.ndjson"]);
    assert!(dups.iter().all(|d| d.starts_with("DUPLICATE_RECORD|")));
}
