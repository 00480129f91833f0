"""gunicorn serves chatbridge's HTTP (webhook, admin, console page, /metrics); Daphne serves
only the agents' websockets. docs/BENCHMARKS.md has the measurements behind the split.

    gunicorn -c deploy/gunicorn.conf.py chatbridge.wsgi:application
"""

import os
import shutil
from pathlib import Path

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Plain sync workers by default: with the turns in a task worker (TASKS_BACKEND=database) every
# request is short, and threads cost the webhook capacity (docs/BENCHMARKS.md). With
# TASKS_BACKEND=immediate a request waits on Watson: give each worker threads (GUNICORN_THREADS).
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
worker_class = "gthread" if threads > 1 else "sync"
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
