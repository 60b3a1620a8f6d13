"""A minimal stand-in for Apache Airflow, enough to import a DAG file and
record its tasks and dependencies (the real Airflow is not installed in CI)."""

_current = []


class DAG:
    def __init__(self, dag_id, **kwargs):
        self.dag_id = dag_id
        self.kwargs = kwargs
        self.tasks = {}

    def __enter__(self):
        _current.append(self)
        return self

    def __exit__(self, *exc):
        _current.pop()
        return False
