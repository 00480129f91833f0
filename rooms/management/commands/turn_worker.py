"""`manage.py turn_worker --threads N`: runs django-tasks-db's tasks (bot turns, agent sends) in N
threads of one process, woken by PostgreSQL the moment a task commits.

`db_worker` runs one task at a time and polls: a turn spends nearly all its time waiting on
Watson, so at 300 ms a turn one `db_worker` answers about 3 messages a second, and its poll
interval is added to every reply. Here one dispatcher claims tasks (the same locked,
skipped-if-locked claim as `db_worker`, so this mixes freely with other workers) for every thread
that is free, in one statement, and sleeps on LISTEN `chatbridge_tasks` once a claim comes back
with fewer tasks than free threads: a trigger (rooms migration 0004) sends that NOTIFY when a
task row commits. `--poll` is only the fallback for tasks that become due later; on SQLite (the
embedded run) the worker polls at that interval.

Two turns of one room never run side by side whatever the threads (the turn's own lock, see
rooms/turns.py). SIGTERM or SIGINT: running tasks finish, nothing new is claimed, the process
exits; a second signal exits at once (`turns_resume` answers what was interrupted).
"""

import logging
import queue
import signal
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

import psycopg
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection
from django.db.utils import OperationalError
from django.utils import timezone
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.management.commands.db_worker import Worker
from django_tasks_db.models import DBTaskResult, get_date_max
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

logger = logging.getLogger("chatbridge.worker")

NOTIFY_CHANNEL = "chatbridge_tasks"  # rooms/migrations/0004_task_notify_trigger.py


class Command(BaseCommand):
    help = "Run background tasks (bot turns, agent sends) in several threads of one process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument(
            "--poll",
            type=float,
            default=1.0,
            help="seconds between checks when nothing has been notified (SQLite: the interval)",
        )
        parser.add_argument("--queue-name", default="default")

    def handle(self, *args, threads: int, poll: float, queue_name: str, **options) -> None:
        if threads < 1:
            sys.exit("turn_worker: --threads must be at least 1")
        if poll <= 0:
            sys.exit("turn_worker: --poll must be positive")
        queue_names = queue_name.split(",")
        prefix = uuid.uuid4().hex[:8]
        # One django-tasks-db Worker per thread, for its run_task (results, signals, failures).
        idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        for index in range(threads):
            idle.put(
                Worker(
                    queue_names=queue_names,
                    interval=poll,
                    batch=False,
                    backend_name="default",
                    startup_delay=False,
                    max_tasks=None,
                    worker_id=f"{prefix}-{index}",
                    excluded_queue_names=[],
                )
            )
        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            if stopping.is_set():
                sys.exit(1)
            stopping.set()

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)

        wake = _Wakeup(poll)
        self.stdout.write(f"turn_worker: {threads} threads on queue {queue_name}")
        executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="turn-worker")
        try:
            while not stopping.is_set():
                try:
                    free = [idle.get(timeout=0.5)]  # a free thread, and any other free now
                except queue.Empty:
                    continue
                while True:
                    try:
                        free.append(idle.get_nowait())
                    except queue.Empty:
                        break
                tasks = _claim_many(queue_names, [w.worker_id for w in free])
                for worker, task in zip(free, tasks, strict=False):
                    executor.submit(_run, worker, task, idle)
                for worker in free[len(tasks) :]:
                    idle.put(worker)
                if len(tasks) < len(free):
                    wake.wait(stopping)  # nothing more is ready: sleep until a task commits
        finally:
            executor.shutdown(wait=True)
            wake.close()
            connection.close()


def _claim(queue_names: list[str], worker_id: str) -> DBTaskResult | None:
    claimed = _claim_many(queue_names, [worker_id])
    return claimed[0] if claimed else None


def _claim_many(queue_names: list[str], worker_ids: list[str]) -> list[DBTaskResult]:
    """Up to one ready task per worker id, first in db_worker's order, the n-th marked with the
    n-th id. Fewer than asked means nothing more is ready: the dispatcher can sleep without
    another (empty) claim."""
    close_old_connections()
    if connection.vendor == "postgresql":
        return _claim_postgresql(queue_names, worker_ids)
    claimed = []
    for worker_id in worker_ids:
        task = _claim_sqlite(queue_names, worker_id)
        if task is None:
            break
        claimed.append(task)
    return claimed


def _claim_sqlite(queue_names: list[str], worker_id: str) -> DBTaskResult | None:
    tasks = DBTaskResult.objects.ready().filter(backend_name="default")
    if "*" not in queue_names:
        tasks = tasks.filter(queue_name__in=queue_names)
    try:
        with exclusive_transaction(tasks.db):
            task = tasks.get_locked()
            if task is not None:
                task.claim(worker_id)  # RUNNING: no other worker takes it
            return task
    except OperationalError as error:
        if is_locked_database_exception(error):  # SQLite busy: try again on the next round
            return None
        raise


def _claim_postgresql(queue_names: list[str], worker_ids: list[str]) -> list[DBTaskResult]:
    """db_worker's claim (the first ready tasks in its order, locked and skipped if locked, marked
    RUNNING with a worker's id) for several workers in one statement: one round trip instead of
    four per task, and no query building (the claim was a fifth of the worker's CPU,
    docs/BENCHMARKS.md)."""
    table = connection.ops.quote_name(DBTaskResult._meta.db_table)
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
    """  # noqa: S608 - the table name is the model's own
    params: list = [TaskResultStatus.READY, "default"]
    if queues:
        params.append(queue_names)
    params += [get_date_max(), now, len(worker_ids), TaskResultStatus.RUNNING, now, worker_ids]
    return sorted(DBTaskResult.objects.raw(sql, params), key=lambda task: task.place)


def _run(worker: Worker, task: DBTaskResult, idle: "queue.SimpleQueue[Worker]") -> None:
    try:
        worker.run_task(task)
    except Exception:  # run_task records failures itself; anything else must not kill the thread
        logger.exception("task %s could not be run", task.pk)
    finally:
        connection.close()  # this thread's connection goes back to the pool
        idle.put(worker)


class _Wakeup:
    """Waits for a NOTIFY on its own connection (PostgreSQL), or for `poll` seconds."""

    def __init__(self, poll: float) -> None:
        self.poll = poll
        self.listener: psycopg.Connection | None = None
        if connection.vendor == "postgresql":
            self._listen()

    def _listen(self) -> None:
        try:
            params = connection.get_connection_params()
            params.pop("cursor_factory", None)
            params.pop("context", None)
            self.listener = psycopg.connect(**params, autocommit=True)
            self.listener.execute(f"LISTEN {NOTIFY_CHANNEL}")
        except psycopg.Error as error:
            logger.warning("cannot LISTEN for tasks (%s); polling every %s s", error, self.poll)
            self.listener = None

    def wait(self, stopping: threading.Event) -> None:
        if self.listener is None:
            stopping.wait(self.poll)
            if connection.vendor == "postgresql":
                self._listen()  # PostgreSQL is back: listen again
            return
        deadline = time.monotonic() + self.poll
        try:
            # In short slices: a stop signal cannot interrupt psycopg's wait.
            while not stopping.is_set() and (remaining := deadline - time.monotonic()) > 0:
                for _ in self.listener.notifies(timeout=min(remaining, 0.5), stop_after=1):
                    return
        except psycopg.Error as error:
            logger.warning("lost the LISTEN connection (%s); polling until it is back", error)
            self.close()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
