"""Stand-in for pendulum.datetime (all the DAG file uses)."""

import datetime as _dt


def datetime(year, month, day, *args, tz=None):
    return _dt.datetime(year, month, day, *args, tzinfo=_dt.timezone.utc)
