"""gunicorn serves chatbridge's HTTP (webhook, admin, console page, /metrics); Daphne serves
only the agents' websockets. docs/BENCHMARKS.md has the measurements behind the split.

    gunicorn -c deploy/gunicorn.conf.py chatbridge.wsgi:application
"""

import os
import shutil
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads, so that a slow request (an immediate-mode turn waiting on Watson, an admin export)
# does not hold a whole worker; the connection pool gives each thread its own connection.
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Meta gives up on a webhook after 5 s; a request still running after 30 s is stuck.
timeout = 30
graceful_timeout = 20
# Only the proxy in front may say the request came over HTTPS.
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")
accesslog = None  # chatbridge logs each request itself, as JSON with its request id

_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")


def on_starting(server) -> None:
    # Figures of a previous run's workers would be added to this run's.
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
        Path(_metrics_dir).mkdir(parents=True, exist_ok=True)


def child_exit(server, worker) -> None:
    if _metrics_dir:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
