from django.db import models


class WorkerProcess(models.Model):
    """A `turn_worker` process. It beats every TASK_WORKER_BEAT_SECONDS; one silent for longer
    than TASK_WORKER_STALE_SECONDS is taken for dead and its running tasks are reclaimed
    (chatbridge/worker/liveness.py)."""

    # The prefix of the worker ids it writes on the task rows it claims (`<name>-<thread>`).
    name = models.CharField(max_length=64, unique=True)
    host = models.CharField(max_length=255)
    pid = models.IntegerField()
    threads = models.PositiveSmallIntegerField()
    started_at = models.DateTimeField(auto_now_add=True)
    beat_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "worker processes"

    def __str__(self) -> str:
        return f"{self.name} ({self.host}, pid {self.pid})"
