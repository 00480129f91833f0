"""turn_worker's one-statement claim on PostgreSQL takes tasks as django-tasks-db's own claim does:
highest priority first, then oldest; never a task that is not due; marked RUNNING with the
worker's id; never the same task twice."""

import datetime as dt

import pytest
from django.utils import timezone
from django_tasks import task
from django_tasks_db.compat import TaskResultStatus
from django_tasks_db.models import DBTaskResult

from rooms.management.commands.turn_worker import _claim, _claim_many

pytestmark = pytest.mark.django_db(transaction=True)


@task()
def noop() -> None:
    return None


@pytest.fixture
def database_tasks(settings):
    settings.TASKS = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["default", "other"]}
    }


def test_claims_by_priority_then_age_and_only_due_tasks(database_tasks):
    low = noop.enqueue()
    high = noop.using(priority=10).enqueue()
    later = noop.using(run_after=timezone.now() + dt.timedelta(hours=1)).enqueue()
    other_queue = noop.using(queue_name="other").enqueue()

    first = _claim(["default"], "w-1")
    second = _claim(["default"], "w-2")

    assert [str(first.pk), str(second.pk)] == [str(high.id), str(low.id)]
    assert _claim(["default"], "w-3") is None  # `later` is not due, `other_queue` not ours
    rows = {str(row.pk): row for row in DBTaskResult.objects.all()}
    assert rows[str(high.id)].status == TaskResultStatus.RUNNING
    assert rows[str(high.id)].worker_ids == ["w-1"]
    assert rows[str(high.id)].started_at is not None
    assert rows[str(later.id)].status == TaskResultStatus.READY
    assert rows[str(other_queue.id)].status == TaskResultStatus.READY
    assert str(_claim(["*"], "w-4").pk) == str(other_queue.id)  # every queue


def test_one_claim_for_several_threads_takes_tasks_in_order_each_with_its_worker(database_tasks):
    """The dispatcher claims for every free thread at once; fewer tasks than threads tells it
    that nothing more is ready."""
    low = noop.enqueue()
    high = noop.using(priority=10).enqueue()
    middle = noop.using(priority=5).enqueue()

    first = _claim_many(["default"], ["w-1", "w-2"])
    rest = _claim_many(["default"], ["w-3", "w-4", "w-5"])

    assert [str(task.pk) for task in first] == [str(high.id), str(middle.id)]
    assert [str(task.pk) for task in rest] == [str(low.id)]  # fewer than asked: drained
    workers = {str(row.pk): row.worker_ids for row in DBTaskResult.objects.all()}
    assert workers == {str(high.id): ["w-1"], str(middle.id): ["w-2"], str(low.id): ["w-3"]}
    assert _claim_many(["default"], ["w-6"]) == []
