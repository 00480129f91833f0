"""Fixtures shared by the rooms' stage tests."""

import pytest
from django.test import override_settings

from chatbridge.settings import TASK_BACKENDS


@pytest.fixture
def database_mode():
    """django-tasks-db's backend: a turn's task row commits with its message."""
    with override_settings(
        TASKS_BACKEND="database", TASKS={"default": {"BACKEND": TASK_BACKENDS["database"]}}
    ):
        yield


@pytest.fixture
def no_auto_assign(settings):
    """Queued rooms stay queued until an agent takes one."""
    settings.AUTO_ASSIGN = False
