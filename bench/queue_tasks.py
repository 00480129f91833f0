"""The tasks of bench/task_queues.py, one of each kind per queue, all with the same body.

Each task appends one line (its label, task start and end on CLOCK_MONOTONIC, which every process
of the machine shares) to the file that TASK_QUEUES_RECORD names: one write() of a short line
in append mode, so lines of concurrent threads never mix and nothing is lost.
"""

import os
import time

from django_tasks import task
from procrastinate.contrib.django import app

_record_fd: int | None = None


def _record(label: str, started: float, sleep: float) -> None:
    global _record_fd
    if sleep:
        time.sleep(sleep)
    if _record_fd is None:
        _record_fd = os.open(os.environ["TASK_QUEUES_RECORD"], os.O_WRONLY | os.O_APPEND)
    os.write(_record_fd, f"{label} {started:.6f} {time.monotonic():.6f}\n".encode())


@task()
def chatbridge_job(label: str = "A", sleep: float = 0.0, message_id: int = 0) -> None:
    _record(label, time.monotonic(), sleep)


@app.task(name="procrastinate_job")
def procrastinate_job(label: str = "B", sleep: float = 0.0, message_id: int = 0) -> None:
    _record(label, time.monotonic(), sleep)
