"""Settings of bench/task_queues.py only: chatbridge's, plus Procrastinate's Django app.

The bench gives the environment (DATABASE_URL names its own `chatbridge_queuebench` database);
nothing else here differs from what chatbridge runs with.
"""

from chatbridge.settings import *  # noqa: F403
from chatbridge.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "procrastinate.contrib.django"]

# The bench's tasks, found by both queues by their module path; chatbridge's own modules named
# `tasks` are not Procrastinate tasks.
PROCRASTINATE_AUTODISCOVER_MODULE_NAME = ""
PROCRASTINATE_IMPORT_PATHS = ["bench.queue_tasks"]
