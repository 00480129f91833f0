"""The webhook's statements (rooms/inbound/statements.py) against the ORM paths they replace.

For a returning customer writing to the room the cache names, the one-round-trip store must
store exactly what the general path stores, write the task row django-tasks-db writes, and
change nothing when it stores nothing or fails.
"""

import pytest
from django.core.cache import cache
from django.db import DataError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from chatbridge.cache import active_room_cache_key, cache_get, customer_cache_key
from rooms.bot.tasks import room_turn
from rooms.delivery.services import turn_target
from rooms.events import event_frame
from rooms.inbound.statements import warm_store
from rooms.models import Message, Room, RoomEvent
from tests.payloads import message, notification, text_from
from users.models import Customer
from users.selectors import CustomerRef

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573007070707"
TASK_TABLE = DBTaskResult._meta.db_table


def _warm_room(post_webhook) -> Room:
    """A customer whose customer entry and bot room are in the cache."""
    assert post_webhook(text_from(WA, "hola")).status_code == 200
    return Room.objects.get()


def test_database_mode_stores_message_and_task_in_one_query(database_mode, post_webhook):
    room = _warm_room(post_webhook)
    before = room.last_activity_at

    with CaptureQueriesContext(connection) as queries:
        response = post_webhook(text_from(WA, "¿y mi saldo?"))

    assert response.status_code == 200
    assert len(queries.captured_queries) == 1  # the lock, the room check, both INSERTs
    stored = Message.objects.get(text="¿y mi saldo?")
    assert (stored.room_id, stored.direction, stored.author, stored.handled_at) == (
        room.pk,
        "in",
        "customer",
        None,
    )
    task = DBTaskResult.objects.order_by("-enqueued_at").first()
    assert task.args_kwargs["kwargs"]["message_id"] == stored.pk
    room.refresh_from_db()
    assert room.last_activity_at > before
    assert room.last_customer_at == room.last_activity_at


def test_on_a_cache_miss_customer_and_room_are_read_at_once_then_checked_by_the_store(
    database_mode, post_webhook
):
    """Redis down or the entries gone: customer and open room are read in one query without a
    lock and used as the cache would have been; the store checks the room under the lock."""
    room = _warm_room(post_webhook)
    cache.clear()

    with CaptureQueriesContext(connection) as queries:
        post_webhook(text_from(WA, "¿sigues?"))

    read, store = (q["sql"] for q in queries.captured_queries)
    assert 'FROM "users_customer" c LEFT JOIN "rooms_room" r' in read
    assert "FOR UPDATE" not in read
    assert store.startswith("SELECT pg_advisory_xact_lock")
    assert Message.objects.get(text="¿sigues?").room_id == room.pk
    # Both entries are back: the next message reads neither row.
    assert cache_get(customer_cache_key(provider="whatsapp", uid=WA))["id"] == room.customer_id
    assert cache_get(active_room_cache_key(provider="whatsapp", uid=WA)) == {
        "id": room.pk,
        "status": "bot",
    }
    with CaptureQueriesContext(connection) as queries:
        post_webhook(text_from(WA, "¿y ahora?"))
    assert len(queries.captured_queries) == 1


def test_with_only_the_room_entry_gone_the_room_is_read_then_checked(database_mode, post_webhook):
    """The room's entry is flushed on every status change; the customer's stays."""
    room = _warm_room(post_webhook)
    cache.delete(active_room_cache_key(provider="whatsapp", uid=WA))

    with CaptureQueriesContext(connection) as queries:
        post_webhook(text_from(WA, "¿sigues?"))

    room_read, store = (q["sql"] for q in queries.captured_queries)
    assert 'FROM "rooms_room"' in room_read and 'FROM "users_customer"' not in room_read
    assert store.startswith("SELECT pg_advisory_xact_lock")
    assert Message.objects.get(text="¿sigues?").room_id == room.pk


def test_a_customer_with_a_new_name_is_updated_on_a_cache_miss(post_webhook):
    room = _warm_room(post_webhook)
    cache.clear()
    body = text_from(WA, "hola de nuevo")
    body["entry"][0]["changes"][0]["value"]["contacts"][0]["profile"]["name"] = "Ana Nueva"

    post_webhook(body)

    assert Customer.objects.get(pk=room.customer_id).name == "Ana Nueva"
    assert cache_get(customer_cache_key(provider="whatsapp", uid=WA))["name"] == "Ana Nueva"


def test_task_row_is_the_one_django_tasks_db_writes(database_mode, post_webhook):
    room = _warm_room(post_webhook)
    customer = CustomerRef.of(room.customer)
    stored = Message.objects.filter(direction="in").get()
    # The general path's row (through Task.enqueue) and the one-query path's row.
    enqueued = DBTaskResult.objects.get(
        pk=room_turn.enqueue(room_id=room.pk, message_id=stored.pk, target=turn_target(customer)).id
    )
    post_webhook(text_from(WA, "otra"))
    second = Message.objects.get(text="otra")
    written = DBTaskResult.objects.get(args_kwargs__kwargs__message_id=second.pk)

    different = {"id", "enqueued_at", "args_kwargs"}
    for field in DBTaskResult._meta.concrete_fields:
        if field.name not in different:
            assert getattr(written, field.name) == getattr(enqueued, field.name), field.name
    assert written.args_kwargs == {
        **enqueued.args_kwargs,
        "kwargs": {**enqueued.args_kwargs["kwargs"], "message_id": second.pk},
    }
    assert abs(written.enqueued_at - timezone.now()).total_seconds() < 60


def test_redelivery_to_the_cached_room_changes_nothing(database_mode, post_webhook):
    room = _warm_room(post_webhook)
    item = message(WA, "una vez")
    post_webhook(notification(messages=[item]))
    room.refresh_from_db()
    tasks = DBTaskResult.objects.count()

    response = post_webhook(notification(messages=[item]))

    assert response.json()["duplicates"] == 1
    assert Message.objects.filter(text="una vez").count() == 1
    assert DBTaskResult.objects.count() == tasks
    touched = Room.objects.get().last_activity_at
    assert touched == room.last_activity_at  # a redelivery does not keep the room alive


def test_stale_cached_room_stores_through_the_general_path(database_mode, post_webhook):
    """The cache says bot; the row says the agents have it (changed without a flush)."""
    room = _warm_room(post_webhook)
    Room.objects.filter(pk=room.pk).update(status=Room.Status.QUEUED)  # no signal, no flush
    tasks = DBTaskResult.objects.count()

    post_webhook(text_from(WA, "¿hay alguien?"))

    stored = Message.objects.get(text="¿hay alguien?")
    assert stored.room_id == room.pk
    assert stored.handled_at is not None  # the agents' room: no bot turn
    assert DBTaskResult.objects.count() == tasks


def test_a_failing_task_insert_keeps_nothing_and_the_redelivery_is_stored(
    database_mode, post_webhook
):
    """The task row's INSERT fails inside the query: the message and the room's touch roll back
    with it, the webhook answers 503 (WhatsApp delivers again), and the redelivery is stored."""
    room = _warm_room(post_webhook)
    room.refresh_from_db()
    item = message(WA, "importante")
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE "{TASK_TABLE}" ADD CONSTRAINT refuse CHECK (false) NOT VALID')
    try:
        response = post_webhook(notification(messages=[item]))
        assert response.status_code == 503
        assert not Message.objects.filter(text="importante").exists()
        assert Room.objects.get().last_activity_at == room.last_activity_at
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE "{TASK_TABLE}" DROP CONSTRAINT refuse')

    assert post_webhook(notification(messages=[item])).json()["stored"] == 1
    assert DBTaskResult.objects.filter(
        args_kwargs__kwargs__message_id=Message.objects.get(text="importante").pk
    ).exists()


def test_a_value_too_long_for_its_column_is_refused_not_cut(post_webhook):
    """Each value is cast to its column's type for the SELECT; a cast to varchar(n) would cut a
    longer value without a word, where an INSERT refuses it."""
    room = _warm_room(post_webhook)
    too_long = Message(room_id=room.pk, direction="inbound", author="customer", wa_message_id="x")

    with pytest.raises(DataError):
        warm_store(
            customer_id=room.customer_id,
            room_id=room.pk,
            room_status=room.status,
            message=too_long,
            now=timezone.now(),
        )
    assert not Message.objects.filter(wa_message_id="x").exists()


def _agents_room(post_webhook) -> Room:
    """A queued room whose customer and room are cached: the hand-off flushed the room's entry,
    the next message (general path) filled it again."""
    _warm_room(post_webhook)
    post_webhook(text_from(WA, "agente"))
    post_webhook(text_from(WA, "¿hola?"))
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    return room


def test_a_message_to_the_agents_room_and_its_event_in_one_query(post_webhook, monkeypatch):
    room = _agents_room(post_webhook)
    published = []
    monkeypatch.setattr("rooms.realtime.publish", lambda group, frame: published.append(frame))

    with CaptureQueriesContext(connection) as queries:
        post_webhook(text_from(WA, "¿me atienden?"))

    assert len(queries.captured_queries) == 1
    *_, general, warm = RoomEvent.objects.filter(kind="message.new").order_by("seq")
    stored = Message.objects.get(text="¿me atienden?")
    assert stored.handled_at is not None  # the agents' to answer, no bot turn
    assert warm.seq == general.seq + 1 == Room.objects.get().event_seq
    # The event as room_event_record writes it (the general path wrote `general`).
    assert warm.data == {
        **general.data,
        "id": stored.pk,
        "text": "¿me atienden?",
        "at": stored.created_at.isoformat(),
    }
    assert (warm.actor_id, warm.room_id) == (general.actor_id, room.pk)
    # Published after the commit, as the stored row says.
    assert published == [{"type": "room.event", "event": event_frame(warm)}]


def test_a_stale_agents_room_entry_routes_through_the_general_path(post_webhook):
    room = _agents_room(post_webhook)
    Room.objects.filter(pk=room.pk).update(status=Room.Status.CLOSED)  # no flush
    seq = Room.objects.get().event_seq

    post_webhook(text_from(WA, "vuelvo"))

    stored = Message.objects.get(text="vuelvo")
    assert stored.room_id != room.pk
    assert Room.objects.get(pk=room.pk).event_seq == seq
