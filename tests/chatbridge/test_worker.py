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

from chatbridge.worker.liveness import tasks_reclaim, worker_beat
from chatbridge.worker.models import WorkerProcess
from chatbridge.worker.runner import task_run, tasks_claim_many
from chatbridge.worker.statements import tasks_claim_orm
from tests.payloads import text_from
from tests.servers import AppProcess, post_signed, stop_all, wait_until

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


# --- a worker that died: its running tasks are reclaimed (chatbridge/worker/liveness.py) -----


def _running(worker_ids: list[str], *, started_seconds_ago: float = 120) -> DBTaskResult:
    result = noop.enqueue()
    DBTaskResult.objects.filter(pk=result.id).update(
        status=TaskResultStatus.RUNNING,
        worker_ids=worker_ids,
        started_at=timezone.now() - dt.timedelta(seconds=started_seconds_ago),
    )
    return DBTaskResult.objects.get(pk=result.id)


def test_the_running_tasks_of_a_silent_worker_go_back_to_the_queue(database_tasks):
    dead = _running(["tw-dead00000000-3"])
    worker_beat(name="tw-alive0000000", threads=4)
    alive = _running(["tw-alive0000000-1"])
    just_started = _running(["tw-dead00000000-2"], started_seconds_ago=1)
    not_ours = _running(["3f2a9c1e-5b7d-4e8f"])  # django-tasks-db's own db_worker

    assert tasks_reclaim() == 1
    statuses = {row.pk: row.status for row in DBTaskResult.objects.all()}
    assert statuses[dead.pk] == TaskResultStatus.READY
    assert statuses[alive.pk] == statuses[not_ours.pk] == TaskResultStatus.RUNNING
    assert statuses[just_started.pk] == TaskResultStatus.RUNNING  # not yet past the stale time
    # Ready means ready: the next claim takes it, and the row keeps who ran it before.
    again = _claim(["default"], "tw-alive0000000-2")
    assert (again.pk, again.worker_ids) == (dead.pk, ["tw-dead00000000-3", "tw-alive0000000-2"])


def test_a_task_that_outlived_its_worker_too_often_fails_with_the_reason(database_tasks):
    runs = [f"tw-dead0000000{index}-0" for index in range(3)]
    task_row = _running(runs)
    assert tasks_reclaim() == 1
    task_row.refresh_from_db()
    assert task_row.status == TaskResultStatus.FAILED
    assert task_row.exception_class_path == "chatbridge.worker.liveness.WorkerLost"
    assert "stopped while running it, 3 times" in task_row.traceback
    assert task_row.finished_at is not None


def test_a_worker_beats_while_it_runs_and_leaves_no_row_when_stopped(settings):
    process = AppProcess.turn_worker(TASK_WORKER_BEAT_SECONDS="0.2").start()
    try:
        first = wait_until(lambda: WorkerProcess.objects.first(), what="the first beat")
        assert first.name.startswith("tw-") and first.threads == 4
        wait_until(
            lambda: WorkerProcess.objects.get(pk=first.pk).beat_at > first.beat_at,
            what="a later beat",
        )
    finally:
        process.stop()
    assert not WorkerProcess.objects.exists(), process.output()


def test_tasks_of_a_worker_killed_mid_turn_are_run_again_by_another(
    fake_vendors, whatsapp, watson, record_fault
):
    """SIGKILL of turn_worker during a turn left its task row RUNNING for good (42 rows after
    four kills); now the next worker takes it up once the dead one's beat is stale."""
    fast = {"TASK_WORKER_BEAT_SECONDS": "0.5", "TASK_WORKER_STALE_SECONDS": "2"}
    server = AppProcess.daphne(TASKS_BACKEND="database").start()
    worker = AppProcess.turn_worker(**fast).start()
    replacement = AppProcess.turn_worker(**fast)
    try:
        watson.delay = 5
        assert post_signed(server.url, text_from("573006660002", "hola")).status_code == 200
        wait_until(lambda: watson.requests, timeout=20, what="the turn reaching Watson")
        worker.kill()
        watson.delay = 0
        replacement.start()
        whatsapp.wait_for_sent(1, timeout=30, to="573006660002")
        row = wait_until(
            lambda: DBTaskResult.objects.filter(status=TaskResultStatus.SUCCESSFUL).first(),
            timeout=20,
            what="the reclaimed task finished",
        )
    finally:
        watson.delay = 0
        stop_all((server, worker, replacement))
    assert len(row.worker_ids) == 2  # the dead worker's run, then the replacement's
    assert not DBTaskResult.objects.filter(status=TaskResultStatus.RUNNING).exists()
    assert len(whatsapp.sent) == 1
    record_fault(
        "turn_worker SIGKILLed mid-turn: its task row",
        done="kill while the turn waited on Watson; a new turn_worker (stale after 2 s)",
        held="the task reclaimed and run by the new worker; answered once; no row left running",
    )
