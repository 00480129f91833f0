"""`manage.py metrics_reset`: empty PROMETHEUS_MULTIPROC_DIR before a host's processes start.

The figures of processes of an earlier run would be added to this run's. Run it once per host
start, before gunicorn, Daphne and the workers (docker-compose.yml runs it with the migrations);
never while they run: their files would be gone from under them.
"""

import shutil
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Empty the shared metrics directory (PROMETHEUS_MULTIPROC_DIR) before a host starts."

    def handle(self, *args: object, **options: object) -> None:
        directory = settings.PROMETHEUS_MULTIPROC_DIR
        if not directory:
            self.stdout.write("PROMETHEUS_MULTIPROC_DIR is not set: nothing to reset")
            return
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        removed = 0
        for item in path.iterdir():
            if item.is_dir():
                shutil.rmtree(item)
            else:
                item.unlink()
            removed += 1
        self.stdout.write(f"metrics directory {path}: {removed} file(s) removed")
