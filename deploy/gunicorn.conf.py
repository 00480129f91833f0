"""gunicorn serves chatbridge's HTTP (webhook, admin, console page, /metrics); Daphne serves
only the agents' websockets. docs/BENCHMARKS.md has the measurements behind the split.

    gunicorn -c deploy/gunicorn.conf.py chatbridge.wsgi:application
"""

import os
import socket

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


# The directory is shared with the host's other processes (Daphne, the worker): it is emptied
# when the host starts (`manage.py metrics_reset`), never here.


def child_exit(server, worker) -> None:
    if _metrics_dir:
        from prometheus_client import multiprocess

        # chatbridge.metrics.process_identity, for the worker that exited.
        multiprocess.mark_process_dead(f"{socket.gethostname().replace('_', '-')}-{worker.pid}")
