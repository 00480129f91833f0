from django.apps import AppConfig


class WorkerConfig(AppConfig):
    """The task worker's own table: which `turn_worker` processes are alive."""

    name = "chatbridge.worker"
    label = "worker"
    default_auto_field = "django.db.models.BigAutoField"
