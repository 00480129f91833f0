from django.contrib import admin
from django.http import HttpRequest

from chatbridge.worker.models import WorkerProcess


@admin.register(WorkerProcess)
class WorkerProcessAdmin(admin.ModelAdmin):
    """Which task workers are alive, as they last said so: written by the workers only."""

    list_display = ["name", "host", "pid", "threads", "started_at", "beat_at"]
    readonly_fields = ("name", "host", "pid", "threads", "started_at", "beat_at")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
