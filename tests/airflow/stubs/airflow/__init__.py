"""A stand-in for Apache Airflow, just enough to run deploy/airflow/cspcost_nightly.py's tasks
in order without a scheduler: @dag runs the DAG function, @task runs its function at once,
.expand runs it once per mapped value, >> only orders (already in call order)."""
