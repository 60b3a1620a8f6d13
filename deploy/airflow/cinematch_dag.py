"""CineMatch's weekly monitoring cycle as an Apache Airflow DAG.

Each task calls the `cinematch` binary, so Airflow only schedules and
retries; the logic (validation, atomic batches, drift tests, atomic
retrain + promotion + merge) stays in CineMatch. The database comes from
the CINEMATCH_DB (or NEON_CONNECTION_STRING) variable of the worker.

Set the Airflow Variable `cinematch_inbox` to the directory where weekly
batch files arrive as batch_wN.csv; the run's batch id is
`batch_{{ ds_nodash }}` unless the file for the week is named otherwise.

Tasks branch on CineMatch's exit codes (`cinematch --help`), never on its
output: 0 success, 3 the batch was already ingested (a retried run: fine),
4 a retrain was recorded but not promoted because the champion changed
while it trained (fine: the buffer was merged, the champion stays), 75
another cycle or retrain holds the pipeline lease (fails, so Airflow
retries later), anything else an error.
"""

from datetime import datetime, timedelta

from airflow import DAG
from airflow.operators.bash import BashOperator

CINEMATCH = "cinematch"
INBOX = "{{ var.value.get('cinematch_inbox', '/data/cinematch/inbox') }}"
BATCH_ID = "batch_{{ ds_nodash }}"

default_args = {
    "owner": "cinematch",
    "retries": 3,
    "retry_delay": timedelta(minutes=5),
    "retry_exponential_backoff": True,
}

with DAG(
    dag_id="cinematch_weekly",
    description="Ingest the weekly ratings batch, check drift, retrain if drift",
    schedule="0 9 * * MON",
    start_date=datetime(2025, 12, 15),
    catchup=False,
    max_active_runs=1,  # cycles never overlap (CineMatch also locks)
    default_args=default_args,
    tags=["cinematch", "mlops"],
) as dag:
    # A batch that already completed is refused with exit 3; that is success
    # here, so a retried DAG run is idempotent.
    ingest = BashOperator(
        task_id="ingest",
        bash_command=(
            f"{CINEMATCH} ingest {INBOX}/{BATCH_ID}.csv --batch-id {BATCH_ID} "
            "|| [ $? -eq 3 ]"
        ),
    )
    drift_check = BashOperator(
        task_id="drift_check",
        bash_command=f"{CINEMATCH} drift check --batch {BATCH_ID}",
    )
    # Exit 4: recorded, champion kept because it changed meanwhile: done.
    retrain = BashOperator(
        task_id="retrain_if_drift",
        bash_command=f"{CINEMATCH} retrain --if-drift --window 24h || [ $? -eq 4 ]",
    )
    maintenance = BashOperator(
        task_id="vacuum",
        bash_command=f"{CINEMATCH} db vacuum",
    )

    ingest >> drift_check >> retrain >> maintenance
