"""`manage.py turn_worker --threads N`: bot turns and agent sends in N threads of one process
(chatbridge/worker/runner.py has how)."""

import sys

from django.core.management.base import BaseCommand, CommandParser

from chatbridge.worker.liveness import worker_name
from chatbridge.worker.runner import worker_run


class Command(BaseCommand):
    help = "Run background tasks (bot turns, agent sends) in several threads of one process."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--threads", type=int, default=8)
        parser.add_argument(
            "--poll",
            type=float,
            default=1.0,
            help="seconds between checks when nothing has been notified (SQLite: the interval)",
        )
        parser.add_argument("--queue-name", default="default")

    def handle(
        self, *args: object, threads: int, poll: float, queue_name: str, **options: object
    ) -> None:
        if threads < 1:
            sys.exit("turn_worker: --threads must be at least 1")
        if poll <= 0:
            sys.exit("turn_worker: --poll must be positive")
        self.stdout.write(f"turn_worker: {threads} threads on queue {queue_name}")
        worker_run(
            threads=threads,
            poll=poll,
            queue_names=queue_name.split(","),
            prefix=worker_name(),
        )
