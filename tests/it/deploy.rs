//! The examples in `deploy/` run as shipped. The Airflow DAG runs under Airflow itself
//! (`airflow dags test`, SQLite metadata database, `.venv-airflow/` from `make airflow`): two
//! nights of dumps rated in three mapped shards publish what the same nights do in one
//! process, and an exit code 2 fails its task without the retries an exit code 1 gets. The
//! Kubernetes manifests validate against Kubernetes' OpenAPI schema (`kubernetes-validate`
//! in `.venv-integ/`), and the Indexed Job's arguments are accepted by the CLI for every
//! index.

use crate::common::*;
use std::collections::BTreeMap;
use std::path::Path;

fn airflow_python() -> Option<std::path::PathBuf> {
    venv_python(".venv-airflow", "airflow", "CSPCOST_SKIP_AIRFLOW")
}

fn copy_tree(from: &Path, to: &Path) {
    for rel in files_under(from) {
        let dest = to.join(&rel);
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&rel), dest).unwrap();
    }
}

/// One `airflow dags test` of the DAG (tests/airflow/run_dag.py): the run's state and its
/// task instances `{task, map_index, state, try_number, max_tries, returned}`, in run order.
fn run_dag(
    py: &Path,
    home: &Path,
    date: &str,
    lake: &str,
    dumps: &Path,
) -> (String, Vec<serde_json::Value>) {
    let out = std::process::Command::new(py)
        .arg(root().join("tests/airflow/run_dag.py"))
        .arg(home)
        .arg(date)
        .env("CSPCOST_BIN", env!("CARGO_BIN_EXE_cspcost"))
        .env("CSPCOST_LAKE", lake)
        .env("CSPCOST_DUMPS", dumps)
        .env("CSPCOST_SHARDS", "3")
        .env_remove("CSPCOST_CRASH_AT")
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "run_dag.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let tasks = v["tasks"].as_array().unwrap().clone();
    (v["state"].as_str().unwrap().to_string(), tasks)
}

/// `task[map_index]:state:try_number` of every task instance.
fn states(tasks: &[serde_json::Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| {
            let map = match t["map_index"].as_i64().unwrap() {
                -1 => String::new(),
                i => format!("[{i}]"),
            };
            format!(
                "{}{map}:{}:{}",
                t["task"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
                t["try_number"]
            )
        })
        .collect()
}

/// What a reader sees of a lake, run IDs aside: every Parquet file by path, except rating
/// quarantine, which each shard writes to its own file (`part-<i>-of-<n>`) and which is
/// compared as the sorted rows of each month.
fn lake_data(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for (path, mut rows) in parquet_snapshot(dir) {
        let key = match path.strip_prefix("quarantine/stage=rate/") {
            Some(rest) => {
                rows.sort();
                format!("quarantine/stage=rate/{}", rest.split('/').next().unwrap())
            }
            None => path,
        };
        let all: &mut Vec<String> = out.entry(key).or_default();
        all.append(&mut rows);
        all.sort();
    }
    out
}

#[test]
fn airflow_runs_the_dag_two_nights_in_mapped_shards_like_one_process() {
    let Some(py) = airflow_python() else { return };
    let (dumps, lake_dir, single, home) = (lake(), lake(), lake(), lake());
    for d in ["reference", "prices", "usage/dump-2026-01-20"] {
        copy_tree(&sample(d), &dumps.path().join(d));
    }
    // The same nights in one process, on the same files.
    let l = arg(single.path());
    let single_night = |kinds: &[&str]| {
        for kind in kinds {
            ok(["ingest", kind, "--lake", &l, &arg(&dumps.path().join(kind))]);
        }
        ok(["rate", "--lake", &l]);
    };
    let dag_lake = arg(lake_dir.path());
    let (state, night1) = run_dag(&py, home.path(), "2026-01-21", &dag_lake, dumps.path());
    single_night(&["reference", "prices", "usage"]);
    assert_eq!(state, "success");
    assert_eq!(
        states(&night1),
        [
            "ingest:success:1",
            "rate[0]:success:1",
            "rate[1]:success:1",
            "rate[2]:success:1",
            "summary:success:1"
        ]
    );
    let shards: Vec<&str> = night1[1..4]
        .iter()
        .map(|t| t["returned"]["shard"].as_str().unwrap())
        .collect();
    assert_eq!(shards, ["0/3", "1/3", "2/3"]);
    let ingested: Vec<&str> = night1[0]["returned"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["command"].as_str().unwrap())
        .collect();
    assert_eq!(
        ingested,
        ["ingest reference", "ingest prices", "ingest usage"]
    );
    assert_eq!(lake_data(lake_dir.path()), lake_data(single.path()));

    // The next night brings a second dump; the first one's files are skipped as ingested.
    copy_tree(
        &sample("usage/dump-2026-02-16"),
        &dumps.path().join("usage/dump-2026-02-16"),
    );
    let (state, night2) = run_dag(&py, home.path(), "2026-02-17", &dag_lake, dumps.path());
    single_night(&["usage"]);
    assert_eq!(state, "success");
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

    let (got, want) = (lake_data(lake_dir.path()), lake_data(single.path()));
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    assert_eq!(got.keys().filter(|k| k.starts_with("costs/")).count(), 5);
    assert_eq!(
        got["costs/org=contoso/month=2026-01/usage-0.parquet"].len(),
        222
    );
    for (f, rows) in &got {
        assert!(
            *rows == want[f],
            "{f}: the sharded DAG and one process differ"
        );
    }
}

#[test]
fn airflow_fails_an_exit_2_task_at_once_and_retries_an_exit_1_task() {
    let Some(py) = airflow_python() else { return };
    let (dumps, home, dir) = (lake(), lake(), lake());
    copy_tree(&sample("reference"), &dumps.path().join("reference"));
    // Exit 2: a lake URL cspcost does not support (bad configuration). Retrying cannot help.
    let (state, tasks) = run_dag(
        &py,
        home.path(),
        "2026-01-21",
        "ftp://host/lake",
        dumps.path(),
    );
    assert_eq!(state, "failed");
    assert_eq!(
        states(&tasks)[0],
        "ingest:failed:1",
        "exit 2 must not be retried"
    );
    assert_eq!(tasks[0]["max_tries"], 2, "the task does have retries");
    assert!(
        states(&tasks)[1..]
            .iter()
            .all(|s| s.contains(":upstream_failed:")),
        "{:?}",
        states(&tasks)
    );
    // Exit 1: the lake cannot be created (I/O). The same task is retried twice.
    let file = write(dir.path(), "not-a-directory", "");
    let (state, tasks) = run_dag(
        &py,
        home.path(),
        "2026-01-22",
        &arg(&file.join("lake")),
        dumps.path(),
    );
    assert_eq!(state, "failed");
    assert_eq!(states(&tasks)[0], "ingest:failed:3", "exit 1 is retried");
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

/// Validate manifests with `kubernetes-validate` (offline: the schemas ship in the package)
/// against Kubernetes `version`, strictly (unknown fields are errors).
fn kubernetes_validate(version: &str, files: &[std::path::PathBuf]) -> Option<(bool, String)> {
    let py = venv_python(".venv-integ", "integ", "CSPCOST_SKIP_KUBERNETES")?;
    let out = std::process::Command::new(py.with_file_name("kubernetes-validate"))
        .args(["--kubernetes-version", version, "--strict"])
        .args(files)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Some((out.status.success(), text))
}

#[test]
fn kubernetes_manifests_validate_against_the_kubernetes_1_33_schema() {
    let dir = root().join("deploy/kubernetes");
    let files: Vec<std::path::PathBuf> = files_under(&dir)
        .into_iter()
        .filter(|f| f.ends_with(".yaml"))
        .map(|f| dir.join(f))
        .collect();
    assert_eq!(files.len(), 2, "{files:?}");
    // 1.33: Indexed Jobs, podFailurePolicy and backoffLimitPerIndex are all GA.
    let Some((passed, text)) = kubernetes_validate("1.33.0", &files) else {
        return;
    };
    assert!(passed, "{text}");
    for job in ["job/cspcost-ingest", "job/cspcost-rate"] {
        assert!(
            text.contains(&format!("passed for resource {job} against version 1.33")),
            "{text}"
        );
    }
    // The validator does reject what Kubernetes would: a misspelt field, and the manifests
    // on a version older than the 1.29 that rate-indexed-job.yaml says it needs.
    let tmp = lake();
    let rate = std::fs::read_to_string(&files[1]).unwrap();
    let bad = write(
        tmp.path(),
        "bad.yaml",
        &rate.replace("backoffLimitPerIndex:", "backoffLimitPerIndx:"),
    );
    let (passed, text) = kubernetes_validate("1.33.0", &[bad]).unwrap();
    assert!(
        !passed && text.contains("'backoffLimitPerIndx' was unexpected"),
        "{text}"
    );
    let (passed, text) = kubernetes_validate("1.28.0", &files[1..]).unwrap();
    assert!(!passed, "{text}");
}
