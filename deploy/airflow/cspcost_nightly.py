"""cspcost nightly on Airflow: ingest the day's dumps, rate the lake in N shards with dynamic
task mapping (one mapped task instance per shard, run in parallel), then summarize.

Each shard task runs `cspcost --log-format json rate --lake LAKE --shard i/N`, forwards its
JSON log lines to the task log, and returns the run's `finished` line (run ID, counts,
quarantine by reason, partitions) to XCom; the summary task adds them up. Exit code 2 (bad
arguments, configuration or input) fails the task without retrying; any other failure
(exit 1: I/O, the store) is retried, which is safe: a crashed rate leaves every partition
whole and the next attempt redoes what is missing (docs/operations.md).

Install: put this file in the DAGs folder of workers that have the `cspcost` binary on PATH
(or set CSPCOST_BIN) and the lake's credentials in their environment (AZURE_STORAGE_*,
AWS_*, GOOGLE_*: docs/operations.md). To run the shards as pods instead, replace the task
bodies with KubernetesPodOperator.partial(...).expand(arguments=...) on the same image.
Tested with Airflow 3.3.2 (`airflow dags test`, tests/it/deploy.rs); the Airflow 2 imports
below are kept for 2.6+ but are not tested.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess

import pendulum

try:  # Airflow 3
    from airflow.sdk import dag, task
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 2
    from airflow.decorators import dag, task
    from airflow.exceptions import AirflowFailException

CSPCOST = os.environ.get("CSPCOST_BIN", "cspcost")
LAKE = os.environ.get("CSPCOST_LAKE", "az://costs/partner-lake")
DUMPS = os.environ.get("CSPCOST_DUMPS", "/data/cspcost/dumps")
# Keep N fixed for a lake: each shard keeps its own state and quarantine files.
SHARDS = int(os.environ.get("CSPCOST_SHARDS", "4"))

log = logging.getLogger(__name__)


def run_cspcost(*args: str) -> dict:
    """Run cspcost with JSON logs; return its `finished` log line. Exit 2 fails for good."""
    cmd = [CSPCOST, "--log-format", "json", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    finished: dict = {}
    for line in proc.stderr.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            log.info("%s", line)
            continue
        level = logging.ERROR if event.get("level") == "error" else logging.INFO
        log.log(level, "%s", event.get("msg", line))
        if event.get("event") == "finished":
            finished = event
    if proc.returncode == 2:
        raise AirflowFailException(f"{' '.join(cmd)}: bad arguments, configuration or input")
    if proc.returncode == 3:
        raise AirflowFailException(f"{' '.join(cmd)}: an internal invariant failed (a bug)")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {proc.returncode}")
    return finished


@dag(
    dag_id="cspcost_nightly",
    schedule="0 2 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["cspcost"],
)
def cspcost_nightly():
    @task(retries=2)
    def ingest() -> list[dict]:
        """Reference, prices and usage dumps into the lake (not sharded)."""
        return [
            run_cspcost("ingest", kind, "--lake", LAKE, os.path.join(DUMPS, kind))
            for kind in ("reference", "prices", "usage")
        ]

    @task(retries=2, max_active_tis_per_dagrun=SHARDS)
    def rate(shard: str) -> dict:
        """Rate the organizations of one shard."""
        finished = run_cspcost("rate", "--lake", LAKE, "--shard", shard)
        return {
            "shard": shard,
            "run_id": finished.get("run_id"),
            "counts": finished.get("counts", {}),
            "quarantined": finished.get("quarantined", {}),
            "partitions_written": finished.get("partitions_written", 0),
            "partitions_deleted": finished.get("partitions_deleted", 0),
        }

    @task
    def summary(results: list[dict]) -> dict:
        """Add the shards up; every shard's counts already balance (staged = rated + quarantined)."""
        total: dict = {"shards": len(results), "counts": {}, "quarantined": {}}
        for r in results:
            for key in ("counts", "quarantined"):
                for k, v in r[key].items():
                    total[key][k] = total[key].get(k, 0) + v
            for k in ("partitions_written", "partitions_deleted"):
                total[k] = total.get(k, 0) + r[k]
        log.info("cspcost nightly: %s", json.dumps(total, sort_keys=True))
        return total

    ingested = ingest()
    rated = rate.expand(shard=[f"{i}/{SHARDS}" for i in range(SHARDS)])
    ingested >> rated
    summary(rated)


cspcost_nightly()
