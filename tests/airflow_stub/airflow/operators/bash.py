from airflow import _current


class BashOperator:
    def __init__(self, task_id, bash_command, **kwargs):
        self.task_id = task_id
        self.bash_command = bash_command
        self.downstream = []
        self.dag = _current[-1] if _current else None
        if self.dag is None:
            raise RuntimeError(f"task {task_id} created outside a DAG context")
        if task_id in self.dag.tasks:
            raise RuntimeError(f"duplicate task id {task_id}")
        self.dag.tasks[task_id] = self

    def __rshift__(self, other):
        self.downstream.append(other)
        return other
