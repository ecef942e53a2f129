"""Run deploy/airflow/cspcost_nightly.py once with the stand-in Airflow (stubs/ on
PYTHONPATH) and print, as JSON, every task called with its arguments and return value."""

import importlib.util
import json
import sys

from airflow import decorators

spec = importlib.util.spec_from_file_location("cspcost_nightly", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)  # the module instantiates its DAG, which runs every task
print(json.dumps(decorators.CALLS))
