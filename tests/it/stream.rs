//! Rating as a stream (issue 16): the default scope rates each staged file in chunks, cut
//! into tasks where a (subscription, meter) ladder starts. Whatever the task and chunk sizes,
//! the cost partitions, the quarantine and the counts are those of one task per file.

use crate::bench_check::generate;
use crate::common::*;

const MONTH: &str = "2026-01";

/// A month of `tenants` subscriptions (2: ~3,000 rows per staged file) with the generator's corner
/// cases (quarantined records, zero and 10-decimal quantities), staged in `lake`.
fn staged_month(dir: &std::path::Path, tenants: u64) -> std::path::PathBuf {
    let input = dir.join("input");
    generate::run(&generate::Opts {
        records: 6_000,
        out: input.clone(),
        tenants,
        subs_per_tenant: 1,
        meters: 6,
        edge_cases: true,
        ..generate::Opts::default()
    })
    .expect("generate");
    let lake = dir.join("lake");
    let l = arg(&lake);
    for kind in ["reference", "prices", "usage"] {
        ok(["ingest", kind, "--lake", &l, &arg(&input.join(kind))]);
    }
    lake
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn tasks_and_chunks_do_not_change_what_is_rated() {
    let dir = lake();
    let whole = staged_month(dir.path(), 2);
    let cut = dir.path().join("cut");
    copy_dir(&whole, &cut);
    // The staged files are large enough to be cut: more rows than the task size below.
    let staged: Vec<String> = parquet_files(&whole.join("staged/usage"));
    assert!(!staged.is_empty());
    let rows: usize = staged
        .iter()
        .map(|f| render_file(&whole.join("staged/usage").join(f), &[]).len())
        .max()
        .unwrap();
    assert!(rows > 2_000, "largest staged file has {rows} rows");

    ok(["rate", "--lake", &arg(&whole), "--month", MONTH]);
    // Runs uncompressed here: what a merge reads back must not depend on the scratch format.
    let env = [
        ("CSPCOST_RATE_TASK_ROWS", "300"),
        ("CSPCOST_RATE_CHUNK_ROWS", "37"),
        ("CSPCOST_SCRATCH_COMPRESSION", "none"),
    ];
    ok_env(["rate", "--lake", &arg(&cut), "--month", MONTH], &env);

    let (a, b) = (parquet_snapshot(&whole), parquet_snapshot(&cut));
    let costs: Vec<&String> = a.keys().filter(|k| k.starts_with("costs/")).collect();
    assert!(!costs.is_empty());
    let quarantined: usize = a
        .iter()
        .filter(|(k, _)| k.starts_with("quarantine/stage=rate"))
        .map(|(_, v)| v.len())
        .sum();
    assert!(quarantined > 0, "the corner cases quarantine some records");
    assert_eq!(a, b);
    let counts = |lake: &std::path::Path| {
        let m = manifests(lake);
        let rate = m.iter().rev().find(|m| m.command == "rate").unwrap();
        (rate.counts.clone(), rate.quarantined.clone())
    };
    assert_eq!(counts(&whole), counts(&cut));
}

/// Issue 16: a partition too large to hold is merged from disk (sorted runs merged with a
/// heap). Forced on the sample dumps (the second restates the first, and duplicates come
/// in) and on the generated month, it stages what the in-memory merge stages, with the same
/// counts and the same quarantine. The spill is flushed at every batch too (one file per
/// partition and batch, written in parallel), which must not change the order of arrival,
/// and the scratch files are not compressed (they are by default).
#[test]
fn partitions_merged_from_disk_equal_those_merged_in_memory() {
    let dir = lake();
    let big = [
        ("CSPCOST_INGEST_BIG_ROWS", "1"),
        ("CSPCOST_INGEST_RUN_ROWS", "7"),
        ("CSPCOST_INGEST_SPILL_BYTES", "1"),
        ("CSPCOST_SCRATCH_COMPRESSION", "none"),
    ];
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    ingest_inputs(&arg(&a), &SAMPLE_INPUTS, &[]);
    ingest_inputs(&arg(&b), &SAMPLE_INPUTS, &big);
    let counts = |lake: &std::path::Path| {
        manifests(lake)
            .iter()
            .map(|m| (m.command.clone(), m.counts.clone(), m.quarantined.clone()))
            .collect::<Vec<_>>()
    };
    let restated: u64 = manifests(&a)
        .iter()
        .map(|m| m.counts.get("restated").copied().unwrap_or(0))
        .sum();
    assert!(restated > 0, "the second dump restates the first");
    assert_eq!(counts(&a), counts(&b));
    assert_eq!(parquet_snapshot(&a), parquet_snapshot(&b));

    let input = dir.path().join("gen");
    generate::run(&generate::Opts {
        records: 3_000,
        out: input.clone(),
        tenants: 2,
        subs_per_tenant: 1,
        meters: 4,
        edge_cases: true,
        ..generate::Opts::default()
    })
    .expect("generate");
    let (c, d) = (dir.path().join("c"), dir.path().join("d"));
    for (lake, env) in [(&c, &[][..]), (&d, &big[..])] {
        for kind in ["reference", "prices", "usage"] {
            ok_env(
                [
                    "ingest",
                    kind,
                    "--lake",
                    &arg(lake),
                    &arg(&input.join(kind)),
                ],
                env,
            );
        }
    }
    assert_eq!(counts(&c), counts(&d));
    assert_eq!(parquet_snapshot(&c), parquet_snapshot(&d));
}

/// A lake's cost partitions and rate quarantine, rendered without the run IDs and without
/// `x_TierScope` (which names the scope).
fn rated_snapshot(lake: &std::path::Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let skip: Vec<&str> = RUN_ID_COLUMNS
        .iter()
        .copied()
        .chain(["x_TierScope"])
        .collect();
    let mut out = std::collections::BTreeMap::new();
    for rel in parquet_files(lake) {
        if rel.starts_with("costs/") || rel.starts_with("quarantine/stage=rate") {
            out.insert(rel.clone(), render_file(&lake.join(&rel), &skip));
        }
    }
    out
}

/// The scope of every row of a lake's cost partitions.
fn scopes(lake: &std::path::Path) -> std::collections::BTreeSet<String> {
    parquet_files(lake)
        .iter()
        .filter(|f| f.starts_with("costs/"))
        .flat_map(|f| render(lake, f, &["x_TierScope"]))
        .collect()
}

/// Issue 16: the customer and organization scopes are rated by groups of ladders, a group
/// whose ladders are (subscription, meter) blocks as a stream. In a month of four tenants of
/// one subscription each (one organization, four staged files), a customer's ladder is its subscription's: so
/// the customer scope, rated in groups as small as a meter and streamed in chunks of 37 rows
/// from several routing tasks, must cost every row as the subscription scope does. The
/// organization's ladders hold both subscriptions (rated in memory): small groups must rate
/// what one group of the whole month rates.
#[test]
fn scope_groups_and_streams_do_not_change_what_is_rated() {
    let dir = lake();
    let by_sub = staged_month(dir.path(), 4);
    for name in ["customer", "org", "org-small"] {
        copy_dir(&by_sub, &dir.path().join(name));
    }
    let month = ["rate", "--month", MONTH, "--lake"];
    let rate = |lake: &str, scope: &str, env: &[(&str, &str)]| {
        let l = arg(&dir.path().join(lake));
        let args: Vec<&str> = month
            .iter()
            .copied()
            .chain([l.as_str(), "--tier-scope", scope])
            .collect();
        ok_env(args, env);
    };
    let small = [
        ("CSPCOST_RATE_GROUP_ROWS", "1"),
        ("CSPCOST_RATE_ROUTE_ROWS", "500"),
        ("CSPCOST_RATE_CHUNK_ROWS", "37"),
        ("CSPCOST_SCRATCH_COMPRESSION", "none"),
    ];
    ok(["rate", "--lake", &arg(&by_sub), "--month", MONTH]);
    rate("customer", "customer", &small);
    rate(
        "org",
        "organization",
        &[("CSPCOST_RATE_GROUP_ROWS", "100000000")],
    );
    rate("org-small", "organization", &small);

    let sub = rated_snapshot(&by_sub);
    assert!(sub.keys().any(|k| k.starts_with("costs/")));
    assert!(sub.keys().any(|k| k.starts_with("quarantine/")));
    assert_eq!(rated_snapshot(&dir.path().join("customer")), sub);
    let org = rated_snapshot(&dir.path().join("org"));
    assert_eq!(rated_snapshot(&dir.path().join("org-small")), org);
    // The organization's ladders are not the subscriptions': its costs differ.
    assert_ne!(org, sub);
    assert_eq!(
        scopes(&dir.path().join("customer")),
        ["customer".to_string()].into()
    );
    let counts = |lake: &str| {
        let m = manifests(&dir.path().join(lake));
        let rate = m.iter().rev().find(|m| m.command == "rate").unwrap();
        (rate.counts.clone(), rate.quarantined.clone())
    };
    let base = counts("org");
    for lake in ["customer", "org-small"] {
        assert_eq!(counts(lake), base, "{lake}");
    }
}

/// Scratch files (ingest's spills and runs, rating's runs) are LZ4 by default; zstd, the
/// other codec, stages and rates the same rows, and a name that is no codec stops the
/// command before it writes anything, naming the variable.
#[test]
fn scratch_codecs_stage_and_rate_alike_and_an_unknown_one_is_refused() {
    let dir = lake();
    let lakes = [dir.path().join("lz4"), dir.path().join("zstd")];
    for (lake, codec) in lakes.iter().zip(["lz4", "zstd"]) {
        let env = [
            ("CSPCOST_INGEST_BIG_ROWS", "1"),
            ("CSPCOST_INGEST_RUN_ROWS", "7"),
            ("CSPCOST_RATE_CHUNK_ROWS", "5"),
            ("CSPCOST_SCRATCH_COMPRESSION", codec),
        ];
        ingest_inputs(&arg(lake), &SAMPLE_INPUTS, &env);
        ok_env(["rate", "--lake", &arg(lake), "--month", MONTH], &env);
    }
    let (a, b) = (parquet_snapshot(&lakes[0]), parquet_snapshot(&lakes[1]));
    assert!(a.keys().any(|k| k.starts_with("costs/")), "{:?}", a.keys());
    assert_eq!(a, b);

    let refused = dir.path().join("refused");
    let out = cspcost_env(
        [
            "ingest",
            "reference",
            "--lake",
            &arg(&refused),
            &arg(&sample("reference")),
        ],
        &[("CSPCOST_SCRATCH_COMPRESSION", "gzip")],
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("CSPCOST_SCRATCH_COMPRESSION is 'gzip'"),
        "{err}"
    );
    assert!(
        !refused.exists(),
        "nothing written: {:?}",
        files_under(&refused)
    );
}
