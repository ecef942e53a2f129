"""Run deploy/airflow/cspcost_nightly.py with Airflow itself: `airflow dags test` against a
SQLite metadata database in AIRFLOW_HOME (created on first use), then print, as JSON, the
run's state and every task instance (task, map index, state, tries; by task ID, which is run order here) with its return value
read back from Airflow's XCom table. Called by tests/it/deploy.rs with the venv's python.

Usage: run_dag.py AIRFLOW_HOME LOGICAL_DATE
The DAG's own variables (CSPCOST_BIN, CSPCOST_LAKE, CSPCOST_DUMPS, CSPCOST_SHARDS) come
from the caller's environment.
"""
import json
import os
import sqlite3
import subprocess
import sys

home, logical_date = sys.argv[1], sys.argv[2]
dags = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "deploy", "airflow")
env = dict(
    os.environ,
    AIRFLOW_HOME=home,
    AIRFLOW__CORE__DAGS_FOLDER=os.path.abspath(dags),
    AIRFLOW__CORE__LOAD_EXAMPLES="False",
    # The DAG leaves retry_delay to the deployment; 1 s keeps a retried task's test short.
    AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY="1",
    PYTHONDONTWRITEBYTECODE="1",
)
os.makedirs(home, exist_ok=True)
db = os.path.join(home, "airflow.db")
log = os.path.join(home, f"dags-test-{logical_date}.log")


def airflow(*args):
    with open(log, "a") as f:
        return subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=env, stdout=f, stderr=subprocess.STDOUT, check=False
        ).returncode


if not os.path.exists(db) and airflow("db", "migrate") != 0:
    sys.exit(f"airflow db migrate failed: see {log}")
rc = airflow("dags", "test", "cspcost_nightly", logical_date)

con = sqlite3.connect(db)
run_id, state = con.execute("SELECT run_id, state FROM dag_run ORDER BY id DESC LIMIT 1").fetchone()
tasks = []
for task_id, map_index, ti_state, try_number, max_tries in con.execute(
    """SELECT task_id, map_index, state, try_number, max_tries FROM task_instance
       WHERE run_id = ? ORDER BY task_id, map_index""",
    (run_id,),
):
    row = con.execute(
        "SELECT value FROM xcom WHERE run_id = ? AND task_id = ? AND map_index = ? AND key = 'return_value'",
        (run_id, task_id, map_index),
    ).fetchone()
    tasks.append(
        {
            "task": task_id,
            "map_index": map_index,
            "state": ti_state,
            "try_number": try_number,
            "max_tries": max_tries,
            "returned": json.loads(row[0]) if row and row[0] is not None else None,
        }
    )
print(json.dumps({"exit_code": rc, "state": state, "tasks": tasks, "log": log}))
