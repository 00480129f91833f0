"""The loop behind `manage.py turn_worker --threads N`: django-tasks-db's tasks (bot turns,
agent sends) in N threads of one process, woken by PostgreSQL the moment a task commits.

`db_worker` runs one task at a time and polls: a turn spends nearly all its time waiting on
Watson, so at 300 ms a turn one `db_worker` answers about 3 messages a second, and its poll
interval is added to every reply. Here one dispatcher claims tasks (the same locked,
skipped-if-locked claim as `db_worker`, so this mixes freely with other workers) for every thread
that is free, in one statement, and sleeps on LISTEN `chatbridge_tasks` once a claim comes back
with fewer tasks than free threads: a trigger (rooms migration 0004) sends that NOTIFY when a
task row commits. `--poll` is only the fallback for tasks that become due later; on SQLite (the
embedded run) the worker polls at that interval.

Two turns of one room never run side by side whatever the threads (the turn's own lock, see
rooms/bot/turns.py). SIGTERM or SIGINT: running tasks finish, nothing new is claimed, the process
exits; a second signal exits at once (`turns_resume` answers what was interrupted).
"""

import logging
import queue
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import FrameType

import psycopg
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.utils import OperationalError
from django_tasks.signals import task_finished, task_started
from django_tasks_db.models import DBTaskResult
from django_tasks_db.utils import exclusive_transaction, is_locked_database_exception

from chatbridge.worker.liveness import NOTIFY_CHANNEL, tasks_reclaim, worker_beat, worker_gone
from chatbridge.worker.statements import tasks_claim, tasks_claim_orm

logger = logging.getLogger("chatbridge.worker")


def worker_run(*, threads: int, poll: float, queue_names: list[str], prefix: str) -> None:
    """Claim and run tasks until SIGTERM or SIGINT; running tasks finish first. `prefix` is the
    worker's name (chatbridge/worker/liveness.py): it beats under it before claiming anything."""
    # A free thread is its worker id (django-tasks-db's `worker_ids` of the rows it claims).
    idle: queue.SimpleQueue[str] = queue.SimpleQueue()
    for index in range(threads):
        idle.put(f"{prefix}-{index}")
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if stopping.is_set():
            sys.exit(1)
        stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)

    worker_beat(name=prefix, threads=threads)
    connection.close()
    # Its own stop: the worker beats until its last task has finished, or another would take
    # that task up as a dead worker's.
    beat_stop = threading.Event()
    beating = threading.Thread(
        target=_beat_loop, args=(prefix, threads, beat_stop), name="beat", daemon=True
    )
    beating.start()
    wake = _Wakeup(poll)
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
            tasks = tasks_claim_many(queue_names, free)
            for worker_id, task in zip(free, tasks, strict=False):
                executor.submit(_run, worker_id, task, idle)
            for worker_id in free[len(tasks) :]:
                idle.put(worker_id)
            if len(tasks) < len(free):
                wake.wait(stopping)  # nothing more is ready: sleep until a task commits
    finally:
        executor.shutdown(wait=True)
        wake.close()
        beat_stop.set()
        beating.join(timeout=settings.TASK_WORKER_BEAT_SECONDS + 5)
        worker_gone(name=prefix)
        connection.close()


def _beat_loop(name: str, threads: int, stopping: threading.Event) -> None:
    """Say this worker is alive, and reclaim the tasks of workers that are not, until stopped.
    A failed beat (PostgreSQL away) is tried again on the next one."""
    while not stopping.wait(settings.TASK_WORKER_BEAT_SECONDS):
        try:
            worker_beat(name=name, threads=threads)
            tasks_reclaim()
        except Exception:
            logger.exception("worker beat failed")
        finally:
            connection.close()


def tasks_claim_many(queue_names: list[str], worker_ids: list[str]) -> list[DBTaskResult]:
    """Up to one ready task per worker id, first in db_worker's order, the n-th marked with the
    n-th id. Fewer than asked means nothing more is ready: the dispatcher can sleep without
    another (empty) claim."""
    close_old_connections()
    if connection.vendor == "postgresql":
        return tasks_claim(queue_names, worker_ids)
    claimed = []
    for worker_id in worker_ids:
        task = _claim_sqlite(queue_names, worker_id)
        if task is None:
            break
        claimed.append(task)
    return claimed


def _claim_sqlite(queue_names: list[str], worker_id: str) -> DBTaskResult | None:
    try:
        with exclusive_transaction(DBTaskResult.objects.db):
            return tasks_claim_orm(queue_names, worker_id)
    except OperationalError as error:
        if is_locked_database_exception(error):  # SQLite busy: try again on the next round
            return None
        raise


def task_run(task: DBTaskResult) -> None:
    """Run a claimed task and record its end, as django-tasks-db's `db_worker` does (through the
    row's public methods and django-tasks' signals): successful with its return value, or failed
    with the exception's class and traceback. tests/test_turn_worker.py compares the rows with
    `db_worker`'s own, so an upgrade that changes what it records fails there."""
    try:
        backend = type(task.task.get_backend())
        result = task.task_result
        task_started.send(sender=backend, task_result=result)
        return_value = task.task.call(*result.args, **result.kwargs)
        task.set_successful(return_value)
        task_finished.send(sender=backend, task_result=task.task_result)
    except BaseException as error:  # noqa: BLE001 - recorded on the row, as db_worker does
        task.set_failed(error)
        try:
            task_finished.send(sender=type(task.task.get_backend()), task_result=task.task_result)
        except Exception:  # the task's path no longer imports: the row says why
            logger.exception("task %s failed unexpectedly", task.pk)


def _run(worker_id: str, task: DBTaskResult, idle: "queue.SimpleQueue[str]") -> None:
    try:
        task_run(task)
    except Exception:  # task_run records failures itself; anything else must not kill the thread
        logger.exception("task %s could not be run", task.pk)
    finally:
        connection.close()  # this thread's connection goes back to the pool
        idle.put(worker_id)


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
