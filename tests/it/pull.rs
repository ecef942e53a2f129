//! `cspcost pull` and `tenants discover` against the fake Microsoft of `fake_ms.rs`
//! (127.0.0.1 only): paging, retries, tokens, selection, crash safety, secrets, and the end
//! to end check that pulled pages rate exactly like the same records read from files.

use crate::common::*;
use crate::fake_ms::{self, Fake, Fault, Usage, World};
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

const A: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const B: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const C: &str = "cccccccc-0000-4000-8000-000000000003";
const S1: &str = "11111111-0000-4000-8000-00000000a001";
const S2: &str = "22222222-0000-4000-8000-00000000a002";
const S3: &str = "33333333-0000-4000-8000-00000000b003";
const S4: &str = "44444444-0000-4000-8000-00000000c004";
const W1: &str = "20260101T000000Z_20260201T000000Z";
const W2: &str = "20260201T000000Z_20260215T000000Z";
const METER: &str = "8767aeb3-6909-4db2-9927-3f51e9a9085e";

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// `n` records of `sub`, reported on the days from `first` (cycling over `days`), each its
/// own resource so that keys differ.
fn synth(sub: &str, first: &str, days: i64, n: usize, tag: &str) -> Vec<Usage> {
    (0..n)
        .map(|i| {
            let reported = day(first) + chrono::Duration::days(i as i64 % days);
            let used = reported - chrono::Duration::days(1);
            Usage {
                reported,
                json: format!(
                    r#"{{"usageStartTime":"{used}T00:00:00+00:00","usageEndTime":"{reported}T00:00:00+00:00","resource":{{"id":"{METER}","name":"Hot LRS Data Stored","category":"Storage","subcategory":"Tiered Block Blob","region":"EU West"}},"quantity":1.25,"unit":"1 GB/Month","infoFields":{{}},"instanceData":{{"resourceUri":"/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/{tag}{i}","location":"westeurope","partNumber":"","orderNumber":"","additionalInfo":{{}},"tags":{{}}}},"attributes":{{"objectType":"AzureUtilizationRecord"}}}}"#
                ),
            }
        })
        .collect()
}

/// Three customers on two pages; A has a legacy and an Azure plan subscription, B a legacy
/// one with a lowercase offer, C (not registered) a legacy one.
fn world() -> World {
    let mut w = World {
        customers_page_size: 2,
        refresh_token: format!("{}-initial", fake_ms::REFRESH_PREFIX),
        ..Default::default()
    };
    w.customers = [
        (A, "Alpha Ltd", "alpha"),
        (B, "Beta GmbH", "beta"),
        (C, "Gamma KK", "gamma"),
    ]
    .iter()
    .map(|(t, c, d)| (t.to_string(), c.to_string(), format!("{d}.onmicrosoft.com")))
    .collect();
    w.subscriptions.insert(
        A.into(),
        vec![
            (S1.into(), "MS-AZR-0145P".into()),
            (S2.into(), "DZH318Z0BPS6:0001:DZH318Z0BML6".into()),
        ],
    );
    w.subscriptions
        .insert(B.into(), vec![(S3.into(), "ms-azr-0145p".into())]);
    w.subscriptions
        .insert(C.into(), vec![(S4.into(), "MS-AZR-0145P".into())]);
    let mut s1 = synth(S1, "2026-01-01", 31, 2500, "jan");
    s1.extend(synth(S1, "2026-02-01", 14, 10, "feb"));
    w.usage.insert(S1.into(), s1);
    w.usage
        .insert(S3.into(), synth(S3, "2026-01-10", 30, 20, "b"));
    w.usage
        .insert(S4.into(), synth(S4, "2026-01-10", 5, 5, "c"));
    w
}

/// A lake with the sample reference data and tenants A and B registered.
fn registered_lake() -> tempfile::TempDir {
    let dir = lake();
    let l = arg(dir.path());
    ok([
        "ingest",
        "reference",
        "--lake",
        &l,
        &arg(&sample("reference")),
    ]);
    for t in [A, B] {
        ok([
            "tenants",
            "add",
            "--lake",
            &l,
            "--tenant",
            t,
            "--org",
            "contoso",
            "--partnership",
            "p-eu",
        ]);
    }
    dir
}

fn run(fake: &Fake, args: &[&str], extra: &[(&str, &str)]) -> Output {
    let mut env: BTreeMap<String, String> = fake.env().into_iter().collect();
    for (k, v) in extra {
        env.insert(k.to_string(), v.to_string());
    }
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    cspcost_env(args, &pairs)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn must(o: Output) -> (String, String) {
    let (out, err) = text(&o);
    assert!(
        o.status.success(),
        "pull failed ({:?}):\n{out}\n{err}",
        o.status.code()
    );
    (out, err)
}

/// The only manifest under `_pull/` (besides the state).
fn manifest(out: &Path) -> serde_json::Value {
    let runs: Vec<String> = files_under(&out.join("_pull"))
        .into_iter()
        .filter(|f| f != "state.json")
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    serde_json::from_slice(&std::fs::read(out.join("_pull").join(&runs[0])).unwrap()).unwrap()
}

/// No secret or token in any output or file.
fn assert_no_secrets(out_dir: &Path, outputs: &[&str]) {
    let needles = [
        fake_ms::SECRET,
        fake_ms::TOKEN_PREFIX,
        fake_ms::REFRESH_PREFIX,
    ];
    for (i, o) in outputs.iter().enumerate() {
        for n in needles {
            assert!(
                !o.contains(n),
                "output {i} contains a credential ({n}):\n{o}"
            );
        }
    }
    for f in files_under(out_dir) {
        let bytes = std::fs::read(out_dir.join(&f)).unwrap();
        let t = String::from_utf8_lossy(&bytes);
        for n in needles {
            assert!(!t.contains(n), "{f} contains a credential ({n})");
        }
    }
}

fn azure_dir(t: &str, s: &str) -> String {
    format!("customers/{t}/subscriptions/{s}/utilizations/azure")
}

#[test]
fn usage_pages_retries_tokens_and_selection() {
    let mut w = world();
    let s3 = format!("/subscriptions/{S3}/utilizations");
    let s1 = format!("/subscriptions/{S1}/utilizations");
    w.faults = vec![
        Fault {
            path: s3.clone(),
            status: 204,
            retry_after: Some("1".into()),
            times: 1,
        },
        Fault {
            path: s3,
            status: 429,
            retry_after: Some("1".into()),
            times: 1,
        },
        Fault {
            path: s1.clone(),
            status: 500,
            retry_after: None,
            times: 1,
        },
        Fault {
            path: s1,
            status: 401,
            retry_after: None,
            times: 1,
        },
    ];
    let fake = Fake::start(w);
    let lake = registered_lake();
    let out = tempfile::tempdir().unwrap();
    let o = arg(out.path());
    let started = std::time::Instant::now();
    let (stdout, stderr) = must(run(
        &fake,
        &[
            "pull",
            "usage",
            "--out",
            &o,
            "--lake",
            &arg(lake.path()),
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-15",
        ],
        &[],
    ));
    assert!(
        started.elapsed().as_secs() >= 2,
        "Retry-After: 1 was not waited twice"
    );
    let a = azure_dir(A, S1);
    let b = azure_dir(B, S3);
    let mut expected = vec![
        "_pull/state.json".to_string(),
        format!("{a}/{W1}-page-0001.json"),
        format!("{a}/{W1}-page-0002.json"),
        format!("{a}/{W1}-page-0003.json"),
        format!("{a}/{W2}-page-0001.json"),
        format!("{b}/{W1}-page-0001.json"),
        format!("{b}/{W2}-page-0001.json"),
        "customers-page-0002.json".into(),
        "customers.json".into(),
        format!("subscriptions/{A}.json"),
        format!("subscriptions/{B}.json"),
    ];
    expected.sort();
    let mut got: Vec<String> = files_under(out.path())
        .into_iter()
        .filter(|f| !(f.starts_with("_pull/") && f != "_pull/state.json"))
        .collect();
    got.sort();
    assert_eq!(got, expected);

    // Pages byte for byte as served, in the order fetched; 1,000 records a page.
    let log = fake.log();
    let served: Vec<&fake_ms::Logged> = log
        .iter()
        .filter(|l| l.path.contains(&format!("{S1}/utilizations")) && l.status == 200)
        .collect();
    assert_eq!(served.len(), 4);
    for (i, l) in served.iter().take(3).enumerate() {
        let file = out.path().join(format!("{a}/{W1}-page-{:04}.json", i + 1));
        assert_eq!(std::fs::read(&file).unwrap(), l.body, "{}", file.display());
    }
    let page1: serde_json::Value = serde_json::from_slice(&served[0].body).unwrap();
    assert_eq!(page1["items"].as_array().unwrap().len(), 1000);
    // The continuation token travels in a header of the follow-up requests.
    assert!(served[0].continuation.is_empty());
    assert!(
        served[1].continuation.ends_with("|1000|1000"),
        "{}",
        served[1].continuation
    );
    assert!(served[2].continuation.ends_with("|2000|1000"));
    assert!(served[1].query.contains("seek_operation=Next"));
    let cust: Vec<&fake_ms::Logged> = log.iter().filter(|l| l.path == "/v1/customers").collect();
    assert_eq!(cust.len(), 2);
    assert_eq!(cust[1].continuation, "cust-2");

    // One correlation ID for the run; a retried request keeps its request ID.
    let api: Vec<&fake_ms::Logged> = log.iter().filter(|l| !l.path.contains("oauth2")).collect();
    let corr = &api[0].correlation_id;
    assert_eq!(corr.len(), 36);
    assert!(log.iter().all(|l| &l.correlation_id == corr));
    let s3w1: Vec<&fake_ms::Logged> = log
        .iter()
        .filter(|l| {
            l.path.contains(&format!("{S3}/utilizations"))
                && l.query.contains("start_time=2026-01-01")
        })
        .collect();
    assert_eq!(
        s3w1.iter().map(|l| l.status).collect::<Vec<_>>(),
        [204, 429, 200]
    );
    assert!(s3w1.iter().all(|l| l.request_id == s3w1[0].request_id));
    let s1w1: Vec<u16> = log
        .iter()
        .filter(|l| {
            l.path.contains(&format!("{S1}/utilizations"))
                && l.query.contains("start_time=2026-01-01")
        })
        .map(|l| l.status)
        .collect();
    assert_eq!(s1w1, [500, 401, 200]);
    // The first token, then one after the 401.
    assert_eq!(log.iter().filter(|l| l.path.contains("oauth2")).count(), 2);
    // Unregistered C and the Azure plan subscription are never asked for utilization.
    assert!(!log
        .iter()
        .any(|l| l.path.contains(C) || l.path.contains(&format!("{S2}/util"))));

    let m = manifest(out.path());
    let c = &m["counts"];
    assert_eq!(m["status"], "ok");
    assert_eq!(c["customers"], 3);
    assert_eq!(c["customers_selected"], 2);
    assert_eq!(c["subscriptions_pulled"], 2);
    assert_eq!(c["subscriptions_skipped"], 1);
    assert_eq!(c["records"], 2530);
    assert_eq!(c["windows"], 4);
    assert_eq!(c["retries"], 4);
    assert_eq!(c["requests"], 12);
    assert_eq!(c["files"], 10);
    assert_eq!(m["skipped"][0]["subscription"], S2);
    assert_eq!(
        m["skipped"][0]["offer_id"],
        "DZH318Z0BPS6:0001:DZH318Z0BML6"
    );
    let reqs = m["requests"].as_array().unwrap();
    let retried: Vec<&serde_json::Value> = reqs
        .iter()
        .filter(|r| r["attempts"].as_u64() > Some(1))
        .collect();
    assert_eq!(retried.len(), 2, "{retried:?}");
    assert!(reqs.iter().all(|r| r.get("path").is_some()
        && r.get("ms_request_id").is_some()
        && r.get("bytes").is_some()));
    let files = m["files"].as_array().unwrap();
    let f0 = files
        .iter()
        .find(|f| f["path"] == format!("{a}/{W1}-page-0001.json"))
        .unwrap();
    assert_eq!(f0["sha256"].as_str().unwrap(), {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&served[0].body))
    });

    // The per-customer summary.
    let line_a = stdout.lines().find(|l| l.starts_with(A)).unwrap();
    let cols: Vec<&str> = line_a.split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 6..],
        ["1", "1", "0", "4", "2510", "2"],
        "{line_a}"
    );
    let line_b = stdout.lines().find(|l| l.starts_with(B)).unwrap();
    let cols: Vec<&str> = line_b.split_whitespace().collect();
    assert_eq!(
        cols[cols.len() - 6..],
        ["1", "0", "0", "2", "20", "2"],
        "{line_b}"
    );
    assert_no_secrets(out.path(), &[&stdout, &stderr]);

    // What was pulled is what ingest reads: every record staged, none quarantined.
    let ing = ok([
        "ingest",
        "usage",
        "--lake",
        &arg(lake.path()),
        &format!("{o}/customers"),
    ]);
    assert!(
        ing.contains("records: 2530 read = 2530 new + 0 restated + 0 unchanged + 0 quarantined"),
        "{ing}"
    );

    // State: both subscriptions complete up to --to; a rerun with the same --to has
    // nothing new to ask and writes no page.
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("_pull/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        st["subscriptions"][format!("{A}/{S1}")]["complete_until"],
        "2026-02-15T00:00:00Z"
    );
    assert_eq!(
        st["subscriptions"][format!("{A}/{S1}")]["pending"],
        serde_json::json!([])
    );
}

#[test]
fn tenants_discover_shows_registration() {
    let fake = Fake::start(world());
    let lake = registered_lake();
    let (stdout, stderr) = must(run(
        &fake,
        &["tenants", "discover", "--lake", &arg(lake.path())],
        &[],
    ));
    let row = |t: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(t))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row(A),
        [A, "Alpha", "Ltd", "alpha.onmicrosoft.com", "contoso"]
    );
    assert_eq!(row(C), [C, "Gamma", "KK", "gamma.onmicrosoft.com", "-"]);
    assert!(stdout.contains("1 customer(s) not registered"), "{stdout}");
    assert_no_secrets(lake.path(), &[&stdout, &stderr]);
    // A lake that is not there is an error, not an empty registry.
    let missing = lake.path().join("nope");
    let o = run(
        &fake,
        &["tenants", "discover", "--lake", &arg(&missing)],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("no cspcost lake at"), "{}", text(&o).1);
    assert!(!missing.exists());
}

#[test]
fn a_failing_subscription_is_reported_after_the_others() {
    let mut w = world();
    w.broken = vec![S1.into()];
    let fake = Fake::start(w);
    let lake = registered_lake();
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &fake,
        &[
            "pull",
            "usage",
            "--out",
            &arg(out.path()),
            "--lake",
            &arg(lake.path()),
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-15",
        ],
        &[],
    );
    let (stdout, stderr) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains(&format!("1 subscription(s) could not be pulled (the others were):\n  - {A}/{S1}: GET /v1/customers/{A}/subscriptions/{S1}/utilizations/azure?start_time=2026-01-01T00:00:00Z")), "{stderr}");
    assert!(
        stderr.contains("HTTP 500") && stderr.contains("after 5 attempt(s)"),
        "{stderr}"
    );
    // B was pulled whole; nothing of S1 is visible.
    let files = files_under(out.path());
    assert!(files.contains(&format!("{}/{W2}-page-0001.json", azure_dir(B, S3))));
    assert!(!files.iter().any(|f| f.contains(S1)), "{files:?}");
    let m = manifest(out.path());
    assert_eq!(m["status"], "partial");
    assert_eq!(m["counts"]["subscriptions_failed"], 1);
    assert_eq!(m["counts"]["subscriptions_pulled"], 1);
    assert_eq!(m["failures"].as_array().unwrap().len(), 1);
    // Its window stays pending for the next run.
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("_pull/state.json")).unwrap())
            .unwrap();
    assert_eq!(
        st["subscriptions"][format!("{A}/{S1}")]["pending"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_no_secrets(out.path(), &[&stdout, &stderr]);
}

#[test]
fn token_errors_are_sentences_and_never_show_the_secret() {
    let fake = Fake::start(world());
    let lake = registered_lake();
    let out = tempfile::tempdir().unwrap();
    let args = [
        "pull",
        "usage",
        "--out",
        &arg(out.path()),
        "--lake",
        &arg(lake.path()),
        "--from",
        "2026-01-01",
        "--to",
        "2026-01-05",
    ];
    // Expired secret (Entra's answer).
    fake.with(|w| w.secret_expired = true);
    let o = run(&fake, &args, &[]);
    let (so, se) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    assert!(
        se.contains("its client secret has expired (AADSTS7000222). Create a new secret"),
        "{se}"
    );
    assert_no_secrets(out.path(), &[&so, &se]);
    fake.with(|w| w.secret_expired = false);

    // The expiry date says so before any request: exit 2; within 30 days: a warning.
    let before = fake.log().len();
    let o = run(
        &fake,
        &args,
        &[("CSPCOST_PC_SECRET_EXPIRES_ON", "2020-01-01")],
    );
    let (_, se) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        se.contains("client secret expired on 2020-01-01 (CSPCOST_PC_SECRET_EXPIRES_ON)"),
        "{se}"
    );
    assert_eq!(
        fake.log().len(),
        before,
        "a request was made with an expired secret"
    );
    let soon = (chrono::Utc::now().date_naive() + chrono::Duration::days(10)).to_string();
    let (_, se) = must(run(
        &fake,
        &args,
        &[("CSPCOST_PC_SECRET_EXPIRES_ON", &soon)],
    ));
    assert!(
        se.contains(&format!(
            "warning: the Partner Center client secret expires on {soon} (10 day(s) left)"
        )),
        "{se}"
    );

    // Wrong secret: invalid_client, with what to check.
    let o = run(
        &fake,
        &args,
        &[("CSPCOST_PC_CLIENT_SECRET", "wrong-secret-value")],
    );
    let (_, se) = text(&o);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        se.contains("Entra refused the app credentials (invalid_client)"),
        "{se}"
    );
    assert!(!se.contains("wrong-secret-value"));

    // A second 401 (after a fresh token) stops the run naming the endpoint.
    fake.with(|w| w.always_401 = vec![format!("/customers/{B}/subscriptions")]);
    let o = run(&fake, &args, &[]);
    let (so, se) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert!(
        se.contains(&format!(
            "GET /v1/customers/{B}/subscriptions: 401 Unauthorized again after a fresh token"
        )),
        "{se}"
    );
    assert_no_secrets(out.path(), &[&so, &se]);

    // A missing credential names its variable.
    let o = run(&fake, &args, &[("CSPCOST_PC_CLIENT_ID", "")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).1.contains("CSPCOST_PC_CLIENT_ID is not set"));
}

#[test]
fn fx_uses_the_refresh_token_and_saves_the_rotated_one() {
    let mut w = world();
    w.fx_csv = std::fs::read_to_string(ms_sample("fx_rates.csv")).unwrap();
    let fake = Fake::start(w);
    let out = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let rt = secrets.path().join("refresh-token");
    std::fs::write(&rt, format!("{}-initial\n", fake_ms::REFRESH_PREFIX)).unwrap();
    let rt_env = arg(&rt);
    let (so, se) = must(run(
        &fake,
        &[
            "pull",
            "fx",
            "--out",
            &arg(out.path()),
            "--month",
            "2026-01",
            "--month",
            "2026-02",
        ],
        &[("CSPCOST_PC_REFRESH_TOKEN_FILE", &rt_env)],
    ));
    for m in ["202601", "202602"] {
        assert_eq!(
            std::fs::read(out.path().join(format!("reference/fx_rates_{m}.csv"))).unwrap(),
            std::fs::read(ms_sample("fx_rates.csv")).unwrap()
        );
    }
    let fx: Vec<fake_ms::Logged> = fake
        .log()
        .into_iter()
        .filter(|l| l.path.contains("fxrates"))
        .collect();
    assert_eq!(fx[0].path, "/v1.0/sales/fxrates(Month='202601')/$value");
    // One token for both months; the rotated refresh token replaced the file, 0600.
    assert_eq!(
        fake.log()
            .iter()
            .filter(|l| l.path.contains("oauth2"))
            .count(),
        1
    );
    let saved = std::fs::read_to_string(&rt).unwrap();
    assert_eq!(saved.trim(), fake.with(|w| w.refresh_token.clone()));
    assert_ne!(saved.trim(), format!("{}-initial", fake_ms::REFRESH_PREFIX));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&rt).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    assert_eq!(std::fs::read_dir(secrets.path()).unwrap().count(), 1);
    assert_no_secrets(out.path(), &[&so, &se]);
    // The pulled file is reference data ingest reads.
    let lake = registered_lake();
    ok([
        "ingest",
        "reference",
        "--lake",
        &arg(lake.path()),
        &arg(&out.path().join("reference")),
    ]);

    // An expired refresh token: repeat the consent.
    fake.with(|w| w.refresh_expired = true);
    let o = run(
        &fake,
        &[
            "pull",
            "fx",
            "--out",
            &arg(out.path()),
            "--month",
            "2026-01",
        ],
        &[("CSPCOST_PC_REFRESH_TOKEN_FILE", &rt_env)],
    );
    let (so, se) = text(&o);
    assert_eq!(o.status.code(), Some(2), "{se}");
    assert!(
        se.contains("which has expired (AADSTS700082")
            && se.contains("Repeat the secure application model consent"),
        "{se}"
    );
    assert_no_secrets(out.path(), &[&so, &se]);
}

/// Retail Prices pages as the fake serves them: sample items split over three pages, the
/// middle one empty, the last with a Count that disagrees.
fn retail_pages() -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for p in [
        "prices/retail-prices-page-1.json",
        "prices/retail-prices-page-2.json",
    ] {
        #[derive(serde::Deserialize)]
        struct P {
            #[serde(rename = "Items")]
            items: Vec<Box<serde_json::value::RawValue>>,
        }
        let page: P = serde_json::from_slice(&std::fs::read(sample(p)).unwrap()).unwrap();
        items.extend(page.items.into_iter().map(|i| i.get().to_string()));
    }
    let half = items.len() / 2;
    let page = |items: &[String], count: usize| {
        format!(
            "{{\"BillingCurrency\":\"USD\",\"CustomerEntityId\":\"Default\",\"CustomerEntityType\":\"Retail\",\"Items\":[{}],\"NextPageLink\":NEXT,\"Count\":{count}}}",
            items.join(",")
        )
    };
    vec![
        page(&items[..half], half),
        page(&[], 0),
        page(&items[half..], items.len() - half + 1),
    ]
}

#[test]
fn prices_follow_next_page_link_through_an_empty_page() {
    let mut w = world();
    w.retail_pages = retail_pages();
    let fake = Fake::start(w);
    let out = tempfile::tempdir().unwrap();
    let (so, se) = must(run(
        &fake,
        &["pull", "prices", "--out", &arg(out.path())],
        &[],
    ));
    let files: Vec<String> = files_under(&out.path().join("prices"));
    assert_eq!(
        files,
        [
            "retail-00001.json",
            "retail-00002.json",
            "retail-00003.json"
        ]
    );
    let log = fake.log();
    assert_eq!(log.len(), 3);
    assert_eq!(
        log[0].query,
        "api-version=2023-01-01-preview&currencyCode=%27USD%27&$filter=priceType%20eq%20%27Consumption%27%20or%20priceType%20eq%20%27Reservation%27"
    );
    assert!(log[1].query.ends_with("$skip=100"));
    for (i, l) in log.iter().enumerate() {
        assert_eq!(
            std::fs::read(out.path().join(format!("prices/retail-{:05}.json", i + 1))).unwrap(),
            l.body
        );
    }
    let m = manifest(out.path());
    assert_eq!(m["counts"]["pages"], 3);
    let warnings = m["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].as_str().unwrap().contains("but"),
        "{warnings:?}"
    );
    assert_no_secrets(out.path(), &[&so, &se]);
}

#[test]
fn ratecard_and_invoices_by_offset() {
    let mut w = world();
    w.ratecard = std::fs::read_to_string(ms_sample("ratecard.json")).unwrap();
    let item = std::fs::read_to_string(ms_sample("invoice-lineitems-azure.json")).unwrap();
    let first: serde_json::Value = serde_json::from_str(&item).unwrap();
    let one = first["items"][0].to_string();
    w.invoices = vec![
        (
            "G000000001".into(),
            "2026-01-10".into(),
            "Azure".into(),
            vec![one.clone(); 4500],
        ),
        (
            "G000000002".into(),
            "2026-02-10".into(),
            "Azure".into(),
            vec![one.clone(); 3],
        ),
        (
            "D000000003".into(),
            "2026-02-10".into(),
            "Office".into(),
            vec![one; 3],
        ),
    ];
    let fake = Fake::start(w);
    let out = tempfile::tempdir().unwrap();
    let o = arg(out.path());
    must(run(
        &fake,
        &[
            "pull",
            "ratecard",
            "--out",
            &o,
            "--currency",
            "eur",
            "--region",
            "DE",
        ],
        &[],
    ));
    assert_eq!(
        std::fs::read(out.path().join("prices/ratecard-EUR-DE.json")).unwrap(),
        std::fs::read(ms_sample("ratecard.json")).unwrap()
    );
    assert!(fake
        .log()
        .iter()
        .any(|l| l.path == "/v1/ratecards/azure" && l.query == "currency=EUR&region=DE"));

    let (so, se) = must(run(&fake, &["pull", "invoices", "--out", &o], &[]));
    let files = files_under(&out.path().join("invoices"));
    assert_eq!(
        files,
        [
            "G000000001/lineitems-0001.json",
            "G000000001/lineitems-0002.json",
            "G000000001/lineitems-0003.json",
            "G000000002/lineitems-0001.json"
        ]
    );
    let offsets: Vec<String> = fake
        .log()
        .iter()
        .filter(|l| l.path.contains("G000000001"))
        .map(|l| {
            l.query
                .split('&')
                .find(|p| p.starts_with("offset="))
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(offsets, ["offset=0", "offset=2000", "offset=4000"]);
    assert!(so.contains("4503 records"), "{so}");
    // --since drops the January invoice; --invoice picks one.
    let out2 = tempfile::tempdir().unwrap();
    must(run(
        &fake,
        &[
            "pull",
            "invoices",
            "--out",
            &arg(out2.path()),
            "--since",
            "2026-02-01",
        ],
        &[],
    ));
    assert_eq!(
        files_under(&out2.path().join("invoices")),
        ["G000000002/lineitems-0001.json"]
    );
    assert_no_secrets(out.path(), &[&so, &se]);
}

#[test]
fn dry_run_requests_and_writes_nothing() {
    let fake = Fake::start(world());
    let lake = registered_lake();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("inputs");
    let (so, _) = must(run(
        &fake,
        &[
            "pull",
            "usage",
            "--dry-run",
            "--out",
            &arg(&dir),
            "--lake",
            &arg(lake.path()),
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-15",
        ],
        &[],
    ));
    assert!(
        so.contains(&format!(
            "GET {}/v1/customers?size=100 -> customers.json",
            fake.url
        )),
        "{so}"
    );
    assert!(
        so.contains(&format!(
            "GET {}/v1/customers/{A}/subscriptions -> subscriptions/{A}.json",
            fake.url
        )),
        "{so}"
    );
    assert!(
        so.contains("2 window(s) from 2026-01-01T00:00:00Z to 2026-02-15T00:00:00Z"),
        "{so}"
    );
    assert!(fake.log().is_empty());
    assert!(!dir.exists());
}

/// Pull `world()`'s usage (no faults) with a crash injected, then resume; returns the out dir.
fn pull_crashed_then_resumed(point: &str, lake: &Path, out: &Path, reference: &Path) {
    let fake = Fake::start(world());
    let args = [
        "pull",
        "usage",
        "--out",
        &arg(out),
        "--lake",
        &arg(lake),
        "--from",
        "2026-01-01",
        "--to",
        "2026-02-15",
        "--concurrency",
        "1",
    ];
    let o = run(&fake, &args, &[("CSPCOST_CRASH_AT", point)]);
    let (_, se) = text(&o);
    assert!(!o.status.success(), "{point}: did not crash\n{se}");
    assert!(se.contains("injected crash"), "{point}: {se}");
    // What is visible is a page of the uninterrupted run, byte for byte; and but for a
    // crash in the middle of a move, every visible window is whole.
    let visible: Vec<String> = files_under(out)
        .into_iter()
        .filter(|f| f.contains("/utilizations/azure/") && !f.contains("/."))
        .collect();
    for f in &visible {
        assert_eq!(
            std::fs::read(out.join(f)).unwrap(),
            std::fs::read(reference.join(f)).unwrap(),
            "{point}: {f}"
        );
    }
    if !point.starts_with("pull-move") {
        for f in &visible {
            let stem = f.split("-page-").next().unwrap();
            for r in files_under(reference)
                .into_iter()
                .filter(|r| r.starts_with(stem))
            {
                assert!(
                    visible.contains(&r),
                    "{point}: {r} of a visible window is missing"
                );
            }
        }
    }
    must(run(&fake, &args, &[]));
}

/// Every file but the run manifests.
fn pulled_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    files_under(dir)
        .into_iter()
        .filter(|f| !f.starts_with("_pull/") || f == "_pull/state.json")
        .map(|f| {
            let b = std::fs::read(dir.join(&f)).unwrap();
            (f, b)
        })
        .collect()
}

#[test]
fn killed_pulls_leave_complete_windows_and_resume_to_the_same_files() {
    let lake = registered_lake();
    let reference = tempfile::tempdir().unwrap();
    let fake = Fake::start(world());
    must(run(
        &fake,
        &[
            "pull",
            "usage",
            "--out",
            &arg(reference.path()),
            "--lake",
            &arg(lake.path()),
            "--from",
            "2026-01-01",
            "--to",
            "2026-02-15",
            "--concurrency",
            "1",
        ],
        &[],
    ));
    let expected = pulled_files(reference.path());
    assert_eq!(expected.len(), 11);
    // With --concurrency 1 the passes are: pages 1-2 customers, 3-4 subscriptions, 5-7 S1's
    // first window, 8 its second, 9-10 S3's; moves likewise; windows S1 W1, S1 W2, S3 W1...
    for point in [
        "pull-page:2",
        "pull-page:6",
        "pull-page:9",
        "pull-commit:4",
        "pull-move:6",
        "pull-window:1",
        "pull-window:3",
        "pull-manifest:1",
    ] {
        let out = tempfile::tempdir().unwrap();
        pull_crashed_then_resumed(point, lake.path(), out.path(), reference.path());
        let got = pulled_files(out.path());
        assert_eq!(
            got.iter().map(|g| &g.0).collect::<Vec<_>>(),
            expected.iter().map(|g| &g.0).collect::<Vec<_>>(),
            "{point}"
        );
        assert!(
            got == expected,
            "{point}: some file differs from the uninterrupted run"
        );
        assert!(
            !files_under(out.path()).iter().any(|f| f.contains("/.")),
            "{point}: staging left behind"
        );
    }

    // Re-pulling unchanged windows writes identical bytes, and ingest skips every file.
    let out = tempfile::tempdir().unwrap();
    let args = [
        "pull",
        "usage",
        "--out",
        &arg(out.path()),
        "--lake",
        &arg(lake.path()),
        "--from",
        "2026-01-01",
        "--to",
        "2026-02-15",
    ];
    must(run(&fake, &args, &[]));
    let l = arg(lake.path());
    ok([
        "ingest",
        "usage",
        "--lake",
        &l,
        &format!("{}/customers", arg(out.path())),
    ]);
    std::fs::remove_file(out.path().join("_pull/state.json")).unwrap();
    must(run(&fake, &args, &[]));
    assert!(pulled_files(out.path()) == expected);
    let again = ok([
        "ingest",
        "usage",
        "--lake",
        &l,
        &format!("{}/customers", arg(out.path())),
    ]);
    assert!(
        again.contains("files: 0 read, 6 skipped as already ingested"),
        "{again}"
    );
}

#[test]
fn pulled_usage_and_prices_rate_like_the_same_files() {
    // The fake serves the sample dump's records (verbatim), reported the day they end.
    let mut w = World {
        customers_page_size: 100,
        ..Default::default()
    };
    let dump = sample("usage/dump-2026-01-20/customers");
    for t in std::fs::read_dir(&dump).unwrap() {
        let t = t.unwrap().file_name().to_string_lossy().into_owned();
        w.customers.push((
            t.clone(),
            format!("Customer {}", &t[..8]),
            format!("{}.example", &t[..8]),
        ));
        for s in std::fs::read_dir(dump.join(&t).join("subscriptions")).unwrap() {
            let s = s.unwrap().file_name().to_string_lossy().into_owned();
            w.subscriptions
                .entry(t.clone())
                .or_default()
                .push((s.clone(), "MS-AZR-0145P".into()));
            let dir = dump
                .join(&t)
                .join("subscriptions")
                .join(&s)
                .join("utilizations/azure");
            let mut pages: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            pages.sort();
            for p in pages {
                #[derive(serde::Deserialize)]
                struct P {
                    items: Vec<Box<serde_json::value::RawValue>>,
                }
                let page: P = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
                for i in page.items {
                    let v: serde_json::Value = serde_json::from_str(i.get()).unwrap();
                    let end =
                        chrono::DateTime::parse_from_rfc3339(v["usageEndTime"].as_str().unwrap())
                            .unwrap();
                    w.usage.entry(s.clone()).or_default().push(Usage {
                        reported: end.with_timezone(&chrono::Utc).date_naive(),
                        json: i.get().to_string(),
                    });
                }
            }
        }
    }
    w.retail_pages = retail_pages();
    w.ratecard = std::fs::read_to_string(sample("prices/ratecard.json")).unwrap();
    let fake = Fake::start(w);

    let files_lake = lake();
    let fl = arg(files_lake.path());
    ok([
        "ingest",
        "reference",
        "--lake",
        &fl,
        &arg(&sample("reference")),
    ]);
    ok(["ingest", "prices", "--lake", &fl, &arg(&sample("prices"))]);
    ok(["ingest", "usage", "--lake", &fl, &arg(&dump)]);
    ok(["rate", "--lake", &fl]);

    let pulled_lake = lake();
    let pl = arg(pulled_lake.path());
    let inputs = tempfile::tempdir().unwrap();
    let i = arg(inputs.path());
    ok([
        "ingest",
        "reference",
        "--lake",
        &pl,
        &arg(&sample("reference")),
    ]);
    must(run(&fake, &["pull", "prices", "--out", &i], &[]));
    must(run(&fake, &["pull", "ratecard", "--out", &i], &[]));
    std::fs::copy(
        sample("prices/price-sheet.csv"),
        inputs.path().join("prices/price-sheet.csv"),
    )
    .unwrap();
    let (so, _) = must(run(
        &fake,
        &[
            "pull",
            "usage",
            "--out",
            &i,
            "--lake",
            &pl,
            "--from",
            "2025-12-01",
            "--to",
            "2026-02-01",
        ],
        &[],
    ));
    assert!(so.contains(" pages, "), "{so}");
    ok(["ingest", "prices", "--lake", &pl, &format!("{i}/prices")]);
    ok(["ingest", "usage", "--lake", &pl, &format!("{i}/customers")]);
    ok(["rate", "--lake", &pl]);

    let skip = [
        "x_RunId",
        "ingest_run_id",
        "run_id",
        "x_SourceFile",
        "x_SourceRow",
    ];
    let costs = |dir: &Path| -> BTreeMap<String, Vec<String>> {
        files_under(dir)
            .into_iter()
            .filter(|f| f.starts_with("costs/") && f.ends_with(".parquet"))
            .map(|f| {
                let mut rows = render_file(&dir.join(&f), &skip);
                rows.sort();
                (f, rows)
            })
            .collect()
    };
    let (a, b) = (costs(files_lake.path()), costs(pulled_lake.path()));
    assert!(!a.is_empty());
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    let rows: usize = a.values().map(Vec::len).sum();
    assert!(rows > 50, "{rows} cost rows");
    for (f, rows) in &a {
        assert!(
            rows == &b[f],
            "{f}: pulled costs differ from the file costs"
        );
    }
}

#[test]
fn measure_ten_customers_five_subscriptions_ninety_days() {
    let mut w = World {
        customers_page_size: 100,
        ..Default::default()
    };
    for c in 0..10 {
        let t = format!("{c:08x}-0000-4000-8000-00000000c000");
        w.customers
            .push((t.clone(), format!("Customer {c}"), format!("c{c}.example")));
        for s in 0..5 {
            let sub = format!("{c:08x}-{s:04x}-4000-8000-00000000d000");
            w.subscriptions
                .entry(t.clone())
                .or_default()
                .push((sub.clone(), "MS-AZR-0145P".into()));
            // 40 records a day: 1,240 in a 31-day window (two pages).
            w.usage
                .insert(sub.clone(), synth(&sub, "2025-10-01", 90, 3600, "m"));
        }
    }
    let fake = Fake::start(w);
    let out = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let (so, se) = must(run(
        &fake,
        &[
            "pull",
            "usage",
            "--all-customers",
            "--out",
            &arg(out.path()),
            "--from",
            "2025-10-01",
            "--to",
            "2025-12-30",
        ],
        &[],
    ));
    let secs = started.elapsed().as_secs_f64();
    let m = manifest(out.path());
    let c = &m["counts"];
    // 90 days = windows of 31, 31, 28 days: 1,240 + 1,240 + 1,120 records, 2 pages each.
    assert_eq!(c["subscriptions_pulled"], 50);
    assert_eq!(c["windows"], 150);
    assert_eq!(c["records"], 180_000);
    assert_eq!(c["requests"], 1 + 1 + 10 + 300);
    assert_eq!(c["retries"], 0);
    assert_eq!(c["files"], 1 + 10 + 300);
    eprintln!(
        "measure: 10 customers x 5 subscriptions x 90 days: {} requests, {} retries, {} files, {} bytes, {secs:.2} s",
        c["requests"], c["retries"], c["files"], c["bytes"]
    );
    assert_no_secrets(out.path(), &[&so, &se]);
}

#[test]
fn pipeline_pull_stage_runs_before_ingest_on_the_same_directory() {
    let mut w = world();
    w.retail_pages = retail_pages();
    let fake = Fake::start(w);
    let lake = registered_lake();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("pull.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"lake = "{}"
stages = ["pull", "ingest"]

[pull]
out = "inputs"
what = ["prices", "usage"]
from = "2026-01-01"
to = "2026-02-15"

[ingest]
prices = ["inputs/prices"]
usage = ["inputs/customers"]
"#,
            arg(lake.path())
        ),
    )
    .unwrap();
    let (so, _) = must(run(&fake, &["run", "--dry-run", &arg(&cfg)], &[]));
    assert!(so.contains("  1. pull prices into "), "{so}");
    assert!(so.contains("  2. pull usage into "), "{so}");
    assert!(so.contains("ingest usage: 0 files"), "{so}");
    assert!(fake.log().is_empty(), "the dry run made a request");
    let (so, se) = must(run(&fake, &["run", &arg(&cfg)], &[]));
    assert!(so.contains("records: 2530 read = 2530 new"), "{so}");
    assert!(
        files_under(&dir.path().join("inputs/prices")).len() == 3,
        "{so}"
    );
    assert_no_secrets(dir.path(), &[&so, &se]);

    // pull after ingest is refused, with the line.
    std::fs::write(
        &cfg,
        std::fs::read_to_string(&cfg)
            .unwrap()
            .replace(r#"["pull", "ingest"]"#, r#"["ingest", "pull"]"#),
    )
    .unwrap();
    let o = run(&fake, &["run", "--dry-run", &arg(&cfg)], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        text(&o)
            .1
            .contains("pull.toml:2: stage pull must come before ingest"),
        "{}",
        text(&o).1
    );
}

#[test]
fn connection_errors_are_retried_then_reported() {
    let fake = Fake::start(world());
    // A port nobody listens on: every attempt is refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    let out = tempfile::tempdir().unwrap();
    let o = run(
        &fake,
        &["pull", "prices", "--out", &arg(out.path())],
        &[("CSPCOST_RETAIL_PRICES_URL", &dead)],
    );
    let (_, se) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{se}");
    assert!(
        se.contains("GET /api/retail/prices?api-version=2023-01-01-preview"),
        "{se}"
    );
    assert!(
        se.contains("connection failed") && se.contains("after 5 attempt(s)"),
        "{se}"
    );
    // Nothing half-written is visible; the manifest records the failed run.
    assert!(files_under(&out.path().join("prices")).is_empty());
    let m = manifest(out.path());
    assert_eq!(m["status"], "failed");
    assert_eq!(m["requests"][0]["attempts"], 5);
    assert_eq!(m["requests"][0]["status"], serde_json::Value::Null);
}

#[test]
fn a_token_about_to_expire_is_refreshed_before_use() {
    let mut w = world();
    // Valid for 60 s: inside the two-minute margin, so every request needs a fresh one.
    w.token_lifetime = Some(60);
    w.invoices = vec![(
        "G000000002".into(),
        "2026-02-10".into(),
        "Azure".into(),
        vec!["{}".into(); 3],
    )];
    let fake = Fake::start(w);
    let out = tempfile::tempdir().unwrap();
    must(run(
        &fake,
        &["pull", "invoices", "--out", &arg(out.path())],
        &[],
    ));
    let log = fake.log();
    let paths: Vec<&str> = log
        .iter()
        .map(|l| {
            if l.path.contains("oauth2") {
                "token"
            } else {
                "api"
            }
        })
        .collect();
    assert_eq!(paths, ["token", "api", "token", "api"]);
    assert!(log.iter().all(|l| l.status == 200));
}
