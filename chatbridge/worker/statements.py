"""Hand-written SQL of the task worker: the claim, beside the ORM claim it replaces."""

from operator import attrgetter

from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult, get_date_max

from chatbridge.statements import quote


def tasks_claim(queue_names: list[str], worker_ids: list[str]) -> list[DBTaskResult]:
    """db_worker's claim (the first ready tasks in its order, locked and skipped if locked, marked
    RUNNING with a worker's id) for several workers in one statement: one round trip instead of
    four per task, and no query building (the claim was a fifth of the worker's CPU,
    docs/BENCHMARKS.md)."""
    table = quote(DBTaskResult._meta.db_table)
    now = timezone.now()
    queues = "" if "*" in queue_names else "AND queue_name = ANY(%s)"
    order = "priority DESC, run_after ASC, enqueued_at ASC"
    sql = f"""
        WITH locked AS (
            SELECT id, priority, run_after, enqueued_at FROM {table}
            WHERE status = %s AND backend_name = %s {queues}
                AND (run_after = %s OR run_after <= %s)
            ORDER BY {order}
            LIMIT %s FOR UPDATE SKIP LOCKED
        ), numbered AS (
            SELECT id, row_number() OVER (ORDER BY {order}) AS place FROM locked
        )
        UPDATE {table} AS task SET status = %s, started_at = %s,
            worker_ids = task.worker_ids || jsonb_build_array((%s::text[])[numbered.place])
        FROM numbered WHERE task.id = numbered.id
        RETURNING task.*, numbered.place
    """
    params: list = [TaskResultStatus.READY, "default"]
    if queues:
        params.append(queue_names)
    params += [get_date_max(), now, len(worker_ids), TaskResultStatus.RUNNING, now, worker_ids]
    # Each row carries its place in the claim order (the RETURNING's `place` column).
    return sorted(DBTaskResult.objects.raw(sql, params), key=attrgetter("place"))


def tasks_claim_orm(queue_names: list[str], worker_id: str) -> DBTaskResult | None:
    """`tasks_claim` for one worker through django-tasks-db's public API, as `db_worker` claims
    (four round trips; on SQLite inside the caller's exclusive transaction)."""
    tasks = DBTaskResult.objects.ready().filter(backend_name="default")
    if "*" not in queue_names:
        tasks = tasks.filter(queue_name__in=queue_names)
    with transaction.atomic():
        task = tasks.get_locked()
        if task is not None:
            task.claim(worker_id)  # RUNNING: no other worker takes it
    return task
