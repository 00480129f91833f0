"""`manage.py turn_worker --threads N`: django-tasks-db's worker loop in N threads of one process.

`db_worker` runs one task at a time, and a turn spends nearly all its time waiting on Watson: at
300 ms a turn, one `db_worker` answers about 3 messages a second. By Little's law 40 messages a
second at 300 ms need 12 turns in flight; threads give that without 12 processes. Each thread
claims its tasks as `db_worker` does (a locked, skipped-if-locked row), so threads and processes
can be mixed freely, and a turn of one room never runs beside another of the same room (the
turn's own lock, see rooms/turns.py).

SIGTERM or SIGINT: every thread finishes the task it is running and stops; a second signal exits
at once (`turns_resume` answers what was interrupted).
"""

import signal
import sys
import threading
import uuid
from types import FrameType

from django.core.management.base import BaseCommand
from django.db import connection
from django_tasks_db.management.commands.db_worker import Worker


class Command(BaseCommand):
    help = "Run background tasks (bot turns, agent sends) in several threads of one process."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument(
            "--interval", type=float, default=0.1, help="seconds between polls when idle"
        )
        parser.add_argument("--queue-name", default="default")

    def handle(self, *args, threads: int, interval: float, queue_name: str, **options) -> None:
        if threads < 1:
            sys.exit("turn_worker: --threads must be at least 1")
        prefix = uuid.uuid4().hex[:8]
        workers = [
            Worker(
                queue_names=queue_name.split(","),
                interval=interval,
                batch=False,
                backend_name="default",
                startup_delay=False,
                max_tasks=None,
                worker_id=f"{prefix}-{index}",
                excluded_queue_names=[],
            )
            for index in range(threads)
        ]
        stopping = threading.Event()

        def stop(signum: int, frame: FrameType | None) -> None:
            if stopping.is_set():
                sys.exit(1)
            stopping.set()
            for worker in workers:
                worker.running = False

        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, stop)

        def run(worker: Worker) -> None:
            try:
                worker.run()
            finally:
                connection.close()  # this thread's connection goes back to the pool

        pool = [
            threading.Thread(target=run, args=(worker,), name=f"turn-worker-{index}", daemon=True)
            for index, worker in enumerate(workers)
        ]
        for thread in pool:
            thread.start()
        self.stdout.write(f"turn_worker: {threads} threads on queue {queue_name}")
        while any(thread.is_alive() for thread in pool):
            for thread in pool:
                thread.join(timeout=0.5)
