"""Enqueueing background work with the transaction it belongs to."""

from collections.abc import Callable

from django.conf import settings
from django.db import transaction


def enqueue_with_transaction(enqueue: Callable[[], object]) -> None:
    """Database backend: the task row commits with what it works on, or neither does.
    Immediate backend: the task runs once that is committed."""
    if settings.TASKS_BACKEND == "database":
        enqueue()
    else:
        transaction.on_commit(enqueue)
