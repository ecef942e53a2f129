//! The examples in `deploy/` run as shipped: the Airflow DAG's tasks (with a stand-in for
//! Airflow, `tests/airflow/stubs/`) rate two nights of dumps in three mapped shards and
//! publish what the same nights do in one process; the Kubernetes Indexed Job's arguments
//! are accepted by the CLI for every index.

use crate::common::*;
use std::path::Path;

fn python() -> Option<String> {
    if let Ok(p) = std::env::var("CSPCOST_PYTHON") {
        if !p.is_empty() {
            return Some(p);
        }
    }
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("python3".into());
    }
    assert!(
        std::env::var("CSPCOST_REQUIRE_INTEROP").is_err(),
        "CSPCOST_REQUIRE_INTEROP is set but no Python is available"
    );
    eprintln!("Airflow DAG test skipped: no python3");
    None
}

fn copy_tree(from: &Path, to: &Path) {
    for rel in files_under(from) {
        let dest = to.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), dest).unwrap();
    }
}

/// Run the DAG once; returns the tasks called, each `{task, kwargs, returned}`.
fn run_dag(py: &str, lake: &Path, dumps: &Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new(py)
        .arg(root().join("tests/airflow/run_dag.py"))
        .arg(root().join("deploy/airflow/cspcost_nightly.py"))
        .env("PYTHONPATH", root().join("tests/airflow/stubs"))
        .env("CSPCOST_BIN", env!("CARGO_BIN_EXE_cspcost"))
        .env("CSPCOST_LAKE", lake)
        .env("CSPCOST_DUMPS", dumps)
        .env("CSPCOST_SHARDS", "3")
        .env_remove("CSPCOST_CRASH_AT")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "DAG failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

#[test]
fn airflow_dag_rates_two_nights_in_mapped_shards_like_one_process() {
    let Some(py) = python() else { return };
    let (dumps, lake_dir, single) = (lake(), lake(), lake());
    for d in ["reference", "prices", "usage/dump-2026-01-20"] {
        copy_tree(&sample(d), &dumps.path().join(d));
    }
    // The same nights in one process, on the same files, publish the same partitions.
    let l = arg(single.path());
    let single_night = |kinds: &[&str]| {
        for kind in kinds {
            ok(["ingest", kind, "--lake", &l, &arg(&dumps.path().join(kind))]);
        }
        ok(["rate", "--lake", &l]);
    };
    let night1 = run_dag(&py, lake_dir.path(), dumps.path());
    single_night(&["reference", "prices", "usage"]);
    let tasks: Vec<&str> = night1.iter().map(|c| c["task"].as_str().unwrap()).collect();
    assert_eq!(tasks, ["ingest", "rate", "rate", "rate", "summary"]);
    let shards: Vec<&str> = night1[1..4]
        .iter()
        .map(|c| c["kwargs"]["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["0/3", "1/3", "2/3"]);

    // The next night brings a second dump; the first one's files are skipped as ingested.
    copy_tree(
        &sample("usage/dump-2026-02-16"),
        &dumps.path().join("usage/dump-2026-02-16"),
    );
    let night2 = run_dag(&py, lake_dir.path(), dumps.path());
    single_night(&["usage"]);
    let summary = &night2.last().unwrap()["returned"];
    assert_eq!(summary["shards"], 3);
    assert_eq!(summary["counts"]["staged"], 589);
    assert_eq!(summary["counts"]["rated"], 481);
    let quarantined: u64 = summary["quarantined"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(quarantined, 108);

    let costs = |d: &Path| -> std::collections::BTreeMap<String, Vec<String>> {
        parquet_snapshot(d)
            .into_iter()
            .filter(|(k, _)| k.starts_with("costs/"))
            .collect()
    };
    let (got, want) = (costs(lake_dir.path()), costs(single.path()));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(got.len(), 5);
    for (f, rows) in &got {
        assert!(
            *rows == want[f],
            "{f}: the sharded DAG and one process differ"
        );
    }
}

/// The `args:` list of the first container of a manifest (a YAML block sequence).
fn container_args(manifest: &str) -> Vec<String> {
    let mut lines = manifest.lines().skip_while(|l| l.trim() != "args:");
    lines.next();
    lines
        .map_while(|l| l.trim().strip_prefix("- ").map(str::to_string))
        .collect()
}

#[test]
fn kubernetes_indexed_job_arguments_run_for_every_index() {
    let manifest =
        std::fs::read_to_string(root().join("deploy/kubernetes/rate-indexed-job.yaml")).unwrap();
    assert!(manifest.contains("completionMode: Indexed"));
    let completions: u32 = manifest
        .lines()
        .find_map(|l| l.trim().strip_prefix("completions: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        manifest.contains(&format!("value: \"{completions}\"")),
        "SHARDS = completions"
    );
    let args = container_args(&manifest);
    assert!(
        args.contains(&"$(JOB_COMPLETION_INDEX)/$(SHARDS)".to_string()),
        "{args:?}"
    );
    let dir = rated_sample();
    for index in 0..completions {
        // Kubernetes expands $(VAR) from the container's environment.
        let expanded: Vec<String> = args
            .iter()
            .map(|a| {
                a.replace("$(LAKE)", &arg(dir.path()))
                    .replace("$(JOB_COMPLETION_INDEX)", &index.to_string())
                    .replace("$(SHARDS)", &completions.to_string())
            })
            .chain(["--dry-run".to_string()])
            .collect();
        let out = cspcost(&expanded);
        assert!(out.status.success(), "{expanded:?}: {}", stderr(&out));
        for line in stderr(&out).lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON log lines");
            assert_eq!(v["level"], "info");
        }
    }
}
