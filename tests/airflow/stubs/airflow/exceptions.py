class AirflowFailException(Exception):
    """Fail the task without retrying."""
