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

/// Copy one of Microsoft's documented utilization pages under the route its `links.self`
/// names (upper-case GUIDs, as Partner Center writes them).
fn ms_page_under_route(dir: &std::path::Path, sample: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(ms_sample(sample)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let uri = v["links"]["self"]["uri"].as_str().unwrap();
    let route = uri.split("/utilizations").next().unwrap();
    write(
        dir,
        &format!("dump/{route}/utilizations/azure/page-1.json"),
        &text,
    )
}

#[test]
fn microsoft_utilization_samples_parse_unchanged() {
    let src = lake();
    let dir = lake();
    ms_page_under_route(src.path(), "utilization-azure-stack.json");
    ms_page_under_route(src.path(), "utilization-classic-paged.json");
    ok([
        "ingest",
        "usage",
        "--lake",
        &arg(dir.path()),
        &arg(&src.path().join("dump")),
    ]);
    // Azure Stack record: 2017-06-07T17:00:00-07:00 is the UTC day 2017-06-08; GUIDs fold to
    // lowercase; 0.217790327034891 is held at 10 decimals; additionalInfo is kept canonical.
    let rows = render(
        dir.path(),
        &month_file(dir.path(), "2017-06"),
        &[
            "customer_tenant_id",
            "subscription_id",
            "meter_id",
            "usage_date",
            "usage_start",
            "quantity",
            "unit",
            "additional_info",
        ],
    );
    assert_eq!(
        rows,
        vec![
            "e499c962-9218-4dba-8b83-8adc94f47b9f|fc8f8908-f918-4406-af13-d5bc0fe41865|8767aeb3-6909-4db2-9927-3f51e9a9085e|2017-06-08|2017-06-08T00:00:00Z|0.2177903270|1 GB/Hr|{\"azureStack.EventDateTime\":\"06/05/2017 06:00:00\",\"azureStack.Location\":\"local\",\"azureStack.MeterId\":\"09F8879E-87E9-4305-A572-4B7BE209F857\",\"azureStack.SubscriptionId\":\"dbd1aa30-e40d-4436-b465-3a8bc11df027\"}"
        ]
    );
    // Classic record: infoFields without instanceData; the next-page link is just metadata.
    let rows = render(
        dir.path(),
        &month_file(dir.path(), "2015-12"),
        &[
            "subscription_id",
            "usage_date",
            "quantity",
            "unit",
            "resource_uri",
            "tags",
            "info_fields",
        ],
    );
    assert_eq!(
        rows,
        vec!["87f4b92f-a490-485e-ad34-5b70cba4af74|2015-12-01|2.0000000000|Hours||{}|{\"meteredRegion\":\"North Central US\",\"meteredService\":\"Azure App Service\",\"meteredServiceType\":\"abtintest\",\"project\":\"JBlack2-NorthCentralUSwebspace\"}"]
    );
}

#[test]
fn microsoft_price_samples_parse_unchanged() {
    let dir = lake();
    let l = arg(dir.path());
    ok([
        "ingest",
        "prices",
        "--lake",
        &l,
        &arg(&ms_sample("retail-prices-d8v4.json")),
        &arg(&ms_sample("ratecard.json")),
    ]);
    let rows = render(
        dir.path(),
        "staged/prices/prices.parquet",
        &[
            "meter_id",
            "type",
            "reservation_term",
            "sku_id",
            "tier_minimum_units",
            "unit_price",
            "unit_of_measure",
            "effective_start_date",
        ],
    );
    // One meter ID on a Consumption item and two Reservation items; rate-card dates without Z;
    // the graduated Data Transfer Out table as six tiers.
    let want = [
        "1e8f6d9f-8b40-4c97-80cc-cff87a290a93|Consumption|||0.0000000000|3.9729000000|1 Hour|2016-09-01",
        "4b836326-7e19-46e6-8bce-1b19bb6cd91e|Consumption|||0.0000000000|7395.0000000000|Connections|2015-09-01",
        "4e763e64-5ae4-5ed3-8892-902bb82ca7d3|Consumption||DZH318Z0D1L4/00J2|0.0000000000|0.4600000000|1 Hour|2020-08-01",
        "4e763e64-5ae4-5ed3-8892-902bb82ca7d3|Reservation|1 Year|DZH318Z0D1L4/01DC|0.0000000000|2377.0000000000|1 Hour|2020-08-01",
        "4e763e64-5ae4-5ed3-8892-902bb82ca7d3|Reservation|3 Years|DZH318Z0D1L4/01DF|0.0000000000|4594.0000000000|1 Hour|2020-08-01",
        "7a2639ce-ae47-4413-9837-6b4f4b78be3d|Consumption|||0.0000000000|0.1122000000|Hours|2017-01-01",
        "9995d93a-7d35-4d3f-9c69-7a7fea447ef4|Consumption|||0.0000000000|0.0832000000|1 GB|2015-06-01",
        "9995d93a-7d35-4d3f-9c69-7a7fea447ef4|Consumption|||1024.0000000000|0.0819000000|1 GB|2015-06-01",
        "9995d93a-7d35-4d3f-9c69-7a7fea447ef4|Consumption|||51200.0000000000|0.0806000000|1 GB|2015-06-01",
        "9995d93a-7d35-4d3f-9c69-7a7fea447ef4|Consumption|||512000.0000000000|0.0794000000|1 GB|2015-06-01",
        "9995d93a-7d35-4d3f-9c69-7a7fea447ef4|Consumption|||1024000.0000000000|0.0775000000|1 GB|2015-06-01",
        "9995d93a-7d35-4d3f-9c69-7a7fea447ef4|Consumption|||5120000.0000000000|0.0775000000|1 GB|2015-06-01",
    ];
    assert_eq!(rows, want);
}

#[test]
fn microsoft_fx_file_reads_and_converts_by_dividing() {
    let dir = lake();
    ok([
        "ingest",
        "reference",
        "--lake",
        &arg(dir.path()),
        &arg(&ms_sample("fx_rates.csv")),
    ]);
    let r = cspcost::model::reference::Reference::load(
        &cspcost::store::Lake::open(&arg(dir.path())).unwrap(),
    )
    .unwrap();
    // "0.27224589249009701" is held at the internal scale of 10 decimals.
    assert_eq!(
        r.fx_usd_per_unit("AED", "2019-09").unwrap().to_string(),
        "0.2722458925"
    );
    assert_eq!(
        r.fx_usd_per_unit("USD", "2019-09").unwrap().to_string(),
        "1.0000000000"
    );
    assert!(r.fx_usd_per_unit("AED", "2019-10").is_none());
}

#[test]
fn every_ingest_reason_code_names_file_row_and_field() {
    let dir = lake();
    ingest_sample(dir.path());
    let run = manifests(dir.path())
        .into_iter()
        .rev()
        .find(|m| m.command == "ingest usage")
        .unwrap()
        .run_id;
    let rows = render(
        dir.path(),
        &format!("quarantine/stage=ingest/run={run}/part-0.parquet"),
        &["reason_code", "source_row", "detail"],
    );
    let joined = rows.join("\n");
    for (code, needle) in [
        ("MALFORMED", "required field resource.id is missing"),
        ("MALFORMED", "not a valid utilization record"),
        ("BAD_NUMBER", "quantity \"12,5\" is not a decimal number"),
        ("BAD_TIMESTAMP", "usageStartTime '2026-13-45T00:00:00Z'"),
        ("BAD_TIMESTAMP", "is not after usageStartTime"),
        ("BAD_ID", "'not-a-guid' is not a GUID"),
        ("DUPLICATE_RECORD", "appeared earlier in this run"),
    ] {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(code) && r.contains(needle)),
            "no {code} row containing {needle:?} in:\n{joined}"
        );
    }
    let files = render(
        dir.path(),
        &format!("quarantine/stage=ingest/run={run}/part-0.parquet"),
        &["source_file"],
    );
    assert!(
        files
            .iter()
            .all(|f| f.contains("sample_data/usage/dump-2026-01-20")),
        "{files:?}"
    );
}

#[test]
fn exponent_and_long_quantities_are_exact() {
    let dir = lake();
    let src = lake();
    let t = "686adbc4-fd3f-4688-b527-617394bf68af";
    let s = "6ad487b8-95fe-47a5-92c2-b86c364426b3";
    let rec = |q: &str, day: u32| {
        format!(
            r#"{{"customerTenantId":"{t}","subscriptionId":"{s}","usageStartTime":"2026-01-{day:02}T00:00:00Z","usageEndTime":"2026-01-{:02}T00:00:00Z","resource":{{"id":"8A09FF56-1B50-410F-A959-30227B19001E"}},"quantity":{q},"unit":"1 GB"}}"#,
            day + 1
        )
    };
    let body = [
        rec("1.5E-7", 1),
        rec("2.5e+3", 2),
        rec("0.123456789012345", 3),
        rec("\"4.25\"", 4),
    ]
    .join("\n");
    write(src.path(), "u.ndjson", &body);
    ok([
        "ingest",
        "usage",
        "--lake",
        &arg(dir.path()),
        &arg(&src.path().join("u.ndjson")),
    ]);
    let rows = render(
        dir.path(),
        &month_file(dir.path(), "2026-01"),
        &["meter_id", "quantity"],
    );
    assert_eq!(
        rows,
        vec![
            "8a09ff56-1b50-410f-a959-30227b19001e|0.0000001500",
            "8a09ff56-1b50-410f-a959-30227b19001e|2500.0000000000",
            "8a09ff56-1b50-410f-a959-30227b19001e|0.1234567890",
            "8a09ff56-1b50-410f-a959-30227b19001e|4.2500000000"
        ]
    );
}

#[test]
fn reingesting_identical_files_is_a_no_op() {
    let dir = lake();
    ingest_sample(dir.path());
    let snapshot = |d: &std::path::Path| -> Vec<(String, Vec<u8>)> {
        let mut v = Vec::new();
        for e in walk(&d.join("staged/usage")) {
            v.push((e.display().to_string(), std::fs::read(&e).unwrap()));
        }
        v
    };
    let before = snapshot(dir.path());
    let out = ok([
        "ingest",
        "usage",
        "--lake",
        &arg(dir.path()),
        &arg(&sample("usage")),
    ]);
    assert!(
        out.contains("files: 0 read, 16 skipped as already ingested"),
        "{out}"
    );
    assert!(
        out.contains("records: 0 read = 0 new + 0 restated + 0 unchanged + 0 quarantined"),
        "{out}"
    );
    assert_eq!(snapshot(dir.path()), before);
    let m = &manifests(dir.path())[0];
    assert!(
        m.inputs
            .iter()
            .all(|i| i.status.starts_with("skipped: identical to")),
        "{:?}",
        m.inputs
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn restated_record_replaces_the_earlier_one_and_unchanged_is_kept() {
    let dir = lake();
    let src = lake();
    let t = "686adbc4-fd3f-4688-b527-617394bf68af";
    let s = "6ad487b8-95fe-47a5-92c2-b86c364426b3";
    let rec = |q: &str, day: u32| {
        format!(
            r#"{{"customerTenantId":"{t}","subscriptionId":"{s}","usageStartTime":"2026-01-{day:02}T00:00:00Z","usageEndTime":"2026-01-{:02}T00:00:00Z","resource":{{"id":"8a09ff56-1b50-410f-a959-30227b19001e"}},"quantity":{q}}}"#,
            day + 1
        )
    };
    let f1 = write(
        src.path(),
        "a/u.ndjson",
        &[rec("1", 1), rec("2", 2)].join("\n"),
    );
    let f2 = write(
        src.path(),
        "b/u.ndjson",
        &[rec("1", 1), rec("2.5", 2), rec("3", 3)].join("\n"),
    );
    let l = arg(dir.path());
    ok(["ingest", "usage", "--lake", &l, &arg(&f1)]);
    let out = ok(["ingest", "usage", "--lake", &l, &arg(&f2)]);
    assert!(
        out.contains("records: 3 read = 1 new + 1 restated + 1 unchanged + 0 quarantined"),
        "{out}"
    );
    let rows = render(
        dir.path(),
        &month_file(dir.path(), "2026-01"),
        &["usage_date", "quantity", "source_file"],
    );
    let f1s = arg(&f1);
    let f2s = arg(&f2);
    assert_eq!(
        rows,
        vec![
            format!("2026-01-01|1.0000000000|{f1s}"),
            format!("2026-01-02|2.5000000000|{f2s}"),
            format!("2026-01-03|3.0000000000|{f2s}")
        ]
    );
}

#[test]
fn gzipped_pages_and_ndjson_read_like_plain_ones() {
    use std::io::Write;
    let plain = lake();
    let gz = lake();
    let src = lake();
    let page = std::fs::read(sample("usage/dump-2026-01-20/customers/686adbc4-fd3f-4688-b527-617394bf68af/subscriptions/6ad487b8-95fe-47a5-92c2-b86c364426b3/utilizations/azure/page-001.json")).unwrap();
    let nd = std::fs::read(sample("usage/dump-2026-01-20/extra/records.ndjson")).unwrap();
    let route = "customers/686adbc4-fd3f-4688-b527-617394bf68af/subscriptions/6ad487b8-95fe-47a5-92c2-b86c364426b3/utilizations/azure";
    let gzip = |bytes: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    };
    std::fs::create_dir_all(src.path().join(format!("plain/{route}"))).unwrap();
    std::fs::create_dir_all(src.path().join(format!("gz/{route}"))).unwrap();
    std::fs::write(
        src.path().join(format!("plain/{route}/page-001.json")),
        &page,
    )
    .unwrap();
    std::fs::write(src.path().join("plain/records.ndjson"), &nd).unwrap();
    std::fs::write(
        src.path().join(format!("gz/{route}/page-001.json.gz")),
        gzip(&page),
    )
    .unwrap();
    std::fs::write(src.path().join("gz/records.ndjson.gz"), gzip(&nd)).unwrap();
    let a = ok([
        "ingest",
        "usage",
        "--lake",
        &arg(plain.path()),
        &arg(&src.path().join("plain")),
    ]);
    let b = ok([
        "ingest",
        "usage",
        "--lake",
        &arg(gz.path()),
        &arg(&src.path().join("gz")),
    ]);
    let counts = |s: &str| {
        s.lines()
            .find(|l| l.contains("records:"))
            .unwrap()
            .to_string()
    };
    assert_eq!(counts(&a), counts(&b));
    assert!(counts(&a).contains("read = "), "{a}");
    let cols = [
        "customer_tenant_id",
        "subscription_id",
        "meter_id",
        "usage_start",
        "quantity",
        "unit",
        "tags",
    ];
    for bucket in std::fs::read_dir(plain.path().join("staged/usage/month=2026-01")).unwrap() {
        let rel = format!(
            "staged/usage/month=2026-01/{}/data.parquet",
            bucket.unwrap().file_name().to_string_lossy()
        );
        assert_eq!(
            render(plain.path(), &rel, &cols),
            render(gz.path(), &rel, &cols),
            "{rel}"
        );
    }
}

/// Staged partitions carry min/max statistics only on the columns a reader filters on
/// (tenant, subscription, meter, date, start), and `raw` and `key_hash`, whose values are all
/// distinct, have no dictionary; merged in memory or from disk alike. The statistics are the
/// column's real minimum and maximum.
#[test]
fn staged_partitions_keep_statistics_on_the_filter_columns_only() {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    use parquet::file::statistics::Statistics;
    for env in [vec![], vec![("CSPCOST_INGEST_BIG_ROWS", "1")]] {
        let dir = lake();
        let l = arg(dir.path());
        let dump = arg(&sample("usage/dump-2026-01-20"));
        ok_env(["ingest", "usage", "--lake", &l, &dump], &env);
        let month = dir.path().join("staged/usage/month=2026-01");
        let mut files = 0;
        for bucket in std::fs::read_dir(&month).unwrap() {
            let path = bucket.unwrap().path().join("data.parquet");
            let reader = SerializedFileReader::new(std::fs::File::open(&path).unwrap()).unwrap();
            let subscriptions = render(
                dir.path(),
                &path.strip_prefix(dir.path()).unwrap().display().to_string(),
                &["subscription_id"],
            );
            let (lo, hi) = (
                subscriptions.iter().min().unwrap(),
                subscriptions.iter().max().unwrap(),
            );
            for group in reader.metadata().row_groups() {
                for column in group.columns() {
                    let name = column.column_path().string();
                    let filtered = [
                        "customer_tenant_id",
                        "subscription_id",
                        "meter_id",
                        "usage_date",
                        "usage_start",
                    ]
                    .contains(&name.as_str());
                    assert_eq!(
                        column.statistics().is_some(),
                        filtered,
                        "{}: statistics of {name}",
                        path.display()
                    );
                    let unique = ["raw", "key_hash", "raw_offset"].contains(&name.as_str());
                    assert_eq!(
                        column.dictionary_page_offset().is_none(),
                        unique,
                        "{}: dictionary of {name}",
                        path.display()
                    );
                    if name == "subscription_id" {
                        let Some(Statistics::ByteArray(s)) = column.statistics() else {
                            panic!("subscription statistics: {:?}", column.statistics());
                        };
                        let text = |v: Option<&parquet::data_type::ByteArray>| {
                            v.map(|b| b.as_utf8().unwrap().to_string()).unwrap()
                        };
                        assert_eq!(
                            (text(s.min_opt()), text(s.max_opt())),
                            (lo.clone(), hi.clone())
                        );
                    }
                }
            }
            files += 1;
        }
        assert!(files > 0, "{env:?}");
    }
}
