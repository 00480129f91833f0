"""The task worker on django-tasks-db's public API (chatbridge/worker/).

Its one-statement claim on PostgreSQL takes tasks as django-tasks-db's own claim does: highest
priority first, then oldest; never a task that is not due; marked RUNNING with the worker's id;
never the same task twice. It records a task's end as `db_worker` does. Both are compared with
django-tasks-db itself, so an upgrade that changes either fails here, loudly.
"""

import datetime as dt

import pytest
from django.core.management import call_command
from django.utils import timezone
from django_tasks import TaskResultStatus, task
from django_tasks_db.models import DBTaskResult

from chatbridge.worker.runner import task_run, tasks_claim_many
from chatbridge.worker.statements import tasks_claim_orm

pytestmark = pytest.mark.django_db(transaction=True)


@task()
def noop() -> None:
    return None


@task()
def answer(value: int) -> int:
    return value * 2


@task()
def broken() -> None:
    raise ValueError("the task failed")


def _claim(queue_names: list[str], worker_id: str) -> DBTaskResult | None:
    claimed = tasks_claim_many(queue_names, [worker_id])
    return claimed[0] if claimed else None


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

    first = tasks_claim_many(["default"], ["w-1", "w-2"])
    rest = tasks_claim_many(["default"], ["w-3", "w-4", "w-5"])

    assert [str(task.pk) for task in first] == [str(high.id), str(middle.id)]
    assert [str(task.pk) for task in rest] == [str(low.id)]  # fewer than asked: drained
    workers = {str(row.pk): row.worker_ids for row in DBTaskResult.objects.all()}
    assert workers == {str(high.id): ["w-1"], str(middle.id): ["w-2"], str(low.id): ["w-3"]}
    assert tasks_claim_many(["default"], ["w-6"]) == []


def test_the_one_statement_claim_takes_what_django_tasks_dbs_own_claim_takes(database_tasks):
    """Two queues, the same tasks: the statement and django-tasks-db's own claim (the ORM path
    of chatbridge/worker/statements.py) pick the same tasks in the same order."""
    order = []
    for priority in (0, 10, 5, 10):
        order.append(noop.using(priority=priority).enqueue())
    ours = [str(task.pk) for task in tasks_claim_many(["default"], ["a", "b", "c", "d"])]
    DBTaskResult.objects.update(status=TaskResultStatus.READY, worker_ids=[], started_at=None)

    theirs = []
    while (claimed := tasks_claim_orm(["default"], "theirs")) is not None:
        theirs.append(str(claimed.pk))

    assert ours == theirs
    assert len(ours) == 4


@pytest.mark.parametrize("make", [lambda: answer.enqueue(21), lambda: broken.enqueue()])
def test_a_task_ends_recorded_as_db_worker_records_it(database_tasks, make):
    """The same task, run by our runner and by django-tasks-db's `db_worker` command: the rows
    agree on everything a task's end records (status, return value, exception class)."""
    ours, theirs = make(), make()
    claimed = tasks_claim_many(["default"], ["ours"])
    assert [str(task.pk) for task in claimed] == [str(ours.id)]
    task_run(claimed[0])

    call_command("db_worker", batch=True, max_tasks=1, verbosity=0)

    ran = {str(row.pk): row for row in DBTaskResult.objects.all()}
    mine, reference = ran[str(ours.id)], ran[str(theirs.id)]
    assert reference.status in (TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED)
    for field in ("status", "return_value", "exception_class_path"):
        assert getattr(mine, field) == getattr(reference, field), field
    assert mine.finished_at is not None
    assert bool(mine.traceback) == bool(reference.traceback)
