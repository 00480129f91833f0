"""Media's background work: fetching a customer's file, off the webhook's request."""

import datetime as dt
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from functools import cache, partial

from django.conf import settings
from django.db import connections, transaction
from django.utils import timezone
from django_tasks import task

from chatbridge.logs import log_bind
from rooms.media.services import media_fetch_run, media_fetches_abandon
from rooms.models import Message

logger = logging.getLogger("chatbridge.media")


@task()
def media_fetch(*, message_id: int) -> None:
    log_bind(task_id=f"media-{message_id}")
    media_fetch_run(message_id=message_id)


def media_fetch_soon(message_id: int) -> None:
    """Start the fetch of a stored message's file, once its transaction has committed: a task row
    (database backend) or, with the immediate backend, a thread of this process: the webhook's
    answer never waits for a download."""
    if settings.TASKS_BACKEND == "database":
        transaction.on_commit(partial(media_fetch.enqueue, message_id=message_id))
    else:
        transaction.on_commit(partial(_fetch_in_thread, message_id))


@cache
def _fetcher() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2, thread_name_prefix="media-fetch")


_running: set[Future] = set()


def _fetch_in_thread(message_id: int) -> None:
    future = _fetcher().submit(_fetch_and_close, message_id)
    _running.add(future)
    future.add_done_callback(_running.discard)


def _fetch_and_close(message_id: int) -> None:
    try:
        media_fetch_run(message_id=message_id)
    except Exception:
        logger.exception("media fetch of message %s failed", message_id)
    finally:
        connections.close_all()  # this thread's connections go back to the pool


def media_fetches_wait(timeout: float = 30.0) -> None:
    """Until this process's fetch threads (immediate backend) are done: a graceful stop, and
    the tests between one another."""
    wait(list(_running), timeout=timeout)


def media_fetch_again(*, message_ids: list[int]) -> int:
    """An operator's "fetch again" (a token fixed, a type now accepted): failed files become
    pending and are fetched anew. How many."""
    ids = list(
        Message.objects.filter(pk__in=message_ids, media_status=Message.MediaStatus.FAILED)
        .exclude(media_id="")
        .values_list("pk", flat=True)
    )
    with transaction.atomic():
        Message.objects.filter(pk__in=ids).update(
            media_status=Message.MediaStatus.PENDING,
            media_error="",
            media_attempts=0,
            updated_at=timezone.now(),
        )
        for message_id in ids:
            media_fetch_soon(message_id)
    return len(ids)


def media_fetches_resume() -> int:
    """The periodic job's part: fetches whose process died (pending, untouched for
    MEDIA_FETCH_STALE_SECONDS) are started again as tasks (never run here: the job has rooms to
    assign), and those taken up three runs' worth of attempts already are given up. How many
    were started again."""
    stale = timezone.now() - dt.timedelta(seconds=settings.MEDIA_FETCH_STALE_SECONDS)
    rows = list(
        Message.objects.filter(media_status=Message.MediaStatus.PENDING, updated_at__lt=stale)
        .order_by("updated_at")
        .values_list("pk", "media_attempts")[:200]
    )
    most = settings.MEDIA_FETCH_ATTEMPTS * 3
    media_fetches_abandon(message_ids=[pk for pk, attempts in rows if attempts >= most])
    again = [pk for pk, attempts in rows if attempts < most]
    for message_id in again:
        media_fetch_soon(message_id)
    return len(again)
