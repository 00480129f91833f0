"""Which task workers are alive, and what happens to the tasks of one that died.

django-tasks-db marks a claimed task RUNNING and trusts its worker to finish it: a worker killed
with SIGKILL (or whose machine went away) leaves the row RUNNING for good. Each `turn_worker`
therefore beats (WorkerProcess.beat_at) every TASK_WORKER_BEAT_SECONDS, before it claims anything
and for as long as it runs. A RUNNING task whose worker has not beaten for
TASK_WORKER_STALE_SECONDS is reclaimed: made READY again for another worker, or, once workers
died TASK_RECLAIM_MAX_RUNS times running it, failed with WorkerLost as its reason (a task that
kills its worker must not kill them all in turn).

Running a task again is safe for chatbridge's tasks: a turn takes the room's lock and answers
only what is still unanswered, and a send is taken only by whoever holds it
(rooms/delivery/services.py). Rows claimed by other workers (django-tasks-db's own db_worker)
carry no `tw-` id and are left alone.
"""

import datetime as dt
import logging
import os
import socket
import uuid

from django.conf import settings
from django.db import connection, transaction
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django_tasks import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from chatbridge.worker.models import WorkerProcess

logger = logging.getLogger("chatbridge.worker")

NAME_PREFIX = "tw-"
NOTIFY_CHANNEL = "chatbridge_tasks"  # rooms/migrations/0004_task_notify_trigger.py


class WorkerLost(Exception):
    """The worker running a task stopped beating (killed, or its machine went away)."""


def worker_name() -> str:
    return f"{NAME_PREFIX}{uuid.uuid4().hex[:12]}"


def worker_beat(*, name: str, threads: int) -> None:
    """This worker is alive (its row is made on the first beat)."""
    # The database's clock, as for every comparison with it: hosts' clocks may differ.
    WorkerProcess.objects.update_or_create(
        name=name,
        defaults={
            "host": socket.gethostname()[:255],
            "pid": os.getpid(),
            "threads": threads,
            "beat_at": Now(),
        },
    )


def worker_gone(*, name: str) -> None:
    """A worker that stopped cleanly (its tasks finished first)."""
    WorkerProcess.objects.filter(name=name).delete()


def tasks_reclaim() -> int:
    """Reclaim the RUNNING tasks of workers that stopped beating; how many."""
    stale = ExpressionWrapper(
        Now() - dt.timedelta(seconds=settings.TASK_WORKER_STALE_SECONDS),
        output_field=DateTimeField(),
    )
    alive = set(WorkerProcess.objects.filter(beat_at__gte=stale).values_list("name", flat=True))
    reclaimed = 0
    with transaction.atomic():
        running = (
            DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING, started_at__lt=stale)
            .select_for_update(skip_locked=True)
            .order_by("started_at")
        )
        for task in running:
            owner = _owner(task)
            if owner is None or owner in alive:
                continue
            runs = len(task.worker_ids)
            if runs >= settings.TASK_RECLAIM_MAX_RUNS:
                reason = f"its worker ({owner}) stopped while running it, {runs} times"
                logger.error("task %s failed: %s", task.pk, reason)
                task.set_failed(WorkerLost(reason))
            else:
                logger.warning("task %s reclaimed from dead worker %s", task.pk, owner)
                task.status = TaskResultStatus.READY
                task.save(update_fields=["status"])
            reclaimed += 1
        if reclaimed and connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # wake the sleeping workers (at commit)
                cursor.execute("SELECT pg_notify(%s, '')", [NOTIFY_CHANNEL])
    # Workers silent for a day are forgotten (their rows only say when they died).
    day_ago = ExpressionWrapper(Now() - dt.timedelta(days=1), output_field=DateTimeField())
    WorkerProcess.objects.filter(beat_at__lt=day_ago).delete()
    return reclaimed


def _owner(task: DBTaskResult) -> str | None:
    """The name of the turn_worker that claimed the task last, or None if not one of ours."""
    last = task.worker_ids[-1] if task.worker_ids else ""
    name = str(last).rpartition("-")[0]
    return name if name.startswith(NAME_PREFIX) else None
