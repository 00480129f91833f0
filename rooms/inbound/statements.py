"""Hand-written SQL of the inbound stage, each statement beside the ORM path it replaces.

`warm_store` is the webhook's common case in one round trip: a returning customer writing to the
room the cache names, the bot's or the agents'. `inbound_message_receive`
(rooms/inbound/services.py) stores a message in one transaction: the customer's
ordering lock, the UPDATE that checks the cached room still holds, the INSERT of the message and,
in database task mode, the INSERT of its turn's task row (a bot room) or the room's event (the
agents' room). Through the ORM that is seven or more round trips and most of the webhook's CPU
(docs/BENCHMARKS.md). This module sends the same statements as one query string
(chatbridge/statements.py: one implicit transaction, committed before PostgreSQL answers; each
statement's snapshot taken when it starts, so the room is read once the lock is held).

The message INSERT takes its row from the room UPDATE's RETURNING, and the task and event
INSERTs from the message's, so a stale room (closed, handed over) or a redelivered message
stores nothing and touches nothing; the caller then takes the general path, which decides either
case as it always did. The task row is the one `Task.enqueue` writes with django-tasks-db, the
event the one `room_event_record` writes (tests compare them column by column); no signal is
sent for either (django-tasks' `task_enqueued`: nothing here listens to it). Its ORM path is
the general one in rooms/inbound/services.py; tests/rooms/inbound/test_statements.py compares
the rows each writes.
"""

import datetime as dt
from dataclasses import dataclass

from django.db import connection
from django_tasks.base import Task
from django_tasks_db.models import DBTaskResult, get_date_max

from chatbridge.locks import CUSTOMER_STORE, advisory_key
from chatbridge.statements import column_name, insert_select, quote, run_statements
from rooms.events import message_data
from rooms.models import Message, Room, RoomEvent
from users.models import Customer


@dataclass(frozen=True)
class Stored:
    event: RoomEvent | None  # the room's event for the message, as stored


def warm_store(
    *,
    customer_id: int,
    room_id: int,
    room_status: str,
    message: Message,
    now: dt.datetime,
    task: Task | None = None,
    task_kwargs: dict | None = None,
    event_kind: str | None = None,
) -> Stored | None:
    """Store `message` (unsaved, its room set) in the room if the room is still this customer's
    and still `room_status`, and the message is new; the instance is then saved (its `pk` set).
    With `task`, also its task row, whose kwargs get the message's id as `message_id`; with
    `event_kind`, also the room's next event, numbered and filled as
    rooms.events.room_event_record does (its data is the message's). None if nothing was stored
    (and nothing was changed). Call only where `one_round_trip_usable()`."""
    room_table = quote(Room._meta.db_table)
    message_table = quote(Message._meta.db_table)
    next_event = ", event_seq = event_seq + 1" if event_kind is not None else ""
    message_insert, message_params = insert_select(Message, message, source="r")
    statements = [
        "SELECT pg_advisory_xact_lock(%s, %s)",
        f"""WITH r AS (
            UPDATE {room_table} SET last_activity_at = %s, last_customer_at = %s{next_event}
            WHERE id = %s AND customer_id = %s AND status = %s
                AND NOT EXISTS (SELECT 1 FROM {message_table} WHERE wa_message_id = %s)
            RETURNING id, event_seq
        ), m AS (
            {message_insert} ON CONFLICT (wa_message_id) DO NOTHING RETURNING id
        )""",  # identifiers of our own models; every value is a parameter
    ]
    params: list = [
        *advisory_key(CUSTOMER_STORE, customer_id),
        now,
        now,
        room_id,
        customer_id,
        room_status,
        message.wa_message_id,
        *message_params,
    ]
    if task is not None:
        row: DBTaskResult = DBTaskResult(  # its id: the model's default, as Task.enqueue gives it
            args_kwargs={"args": [], "kwargs": {**(task_kwargs or {}), "message_id": 0}},
            priority=task.priority,
            task_path=task.module_path,
            queue_name=task.queue_name,
            # What django-tasks-db's pre_save receiver would set (no signals run here).
            run_after=task.run_after or get_date_max(),
            backend_name=task.backend,
        )
        task_insert, task_params = insert_select(
            DBTaskResult,
            row,
            source="m",
            expressions={
                "args_kwargs": "jsonb_set(%s::jsonb, '{kwargs,message_id}', to_jsonb(m.id))"
            },
        )
        statements[1] += f", t AS ({task_insert} RETURNING 1)"
        params += task_params
    event = None
    if event_kind is not None:
        # The message's values are set now (insert_select filled its timestamps): its id is
        # the one thing the statement adds.
        event = RoomEvent(room_id=room_id, kind=event_kind, data=message_data(message))
        event_insert, event_params = insert_select(
            RoomEvent,
            event,
            source="r, m",
            expressions={
                "seq": "r.event_seq",
                "data": "jsonb_set(%s::jsonb, '{id}', to_jsonb(m.id))",
            },
        )
        statements[1] += f", e AS ({event_insert} RETURNING 1)"
        params += event_params
    statements[1] += " SELECT (SELECT id FROM m), (SELECT event_seq FROM r)"
    _, [(message_id, event_seq)] = run_statements(statements, params)
    if message_id is None:
        return None
    message.pk = message_id
    message._state.adding = False
    if event is not None:
        event.seq, event.data["id"] = event_seq, message_id
    return Stored(event=event)


def message_insert(message: Message) -> Message | None:
    """INSERT ... ON CONFLICT DO NOTHING on the WhatsApp id: the database decides what is a
    duplicate, also when two deliveries race on two processes. None for a duplicate. (The ORM
    has no such INSERT that returns the new id: `bulk_create(ignore_conflicts=True)` sets none.)"""
    fields = [field for field in Message._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(message, True), connection) for field in fields]
    columns = ", ".join(quote(column_name(field)) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    sql = (
        f"INSERT INTO {quote(Message._meta.db_table)} ({columns}) VALUES ({placeholders})"
        " ON CONFLICT (wa_message_id) DO NOTHING RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return None
    message.pk = row[0]
    message._state.adding = False
    return message


def open_route_read(*, provider: str, uid: str, line: str = "") -> tuple | None:
    """The customer (id, provider, uid, wa_id, user_id, name, public_id) and their open room (id,
    status; None when there is none) in one read with no lock. The ORM twin is
    `open_route_read_orm` (two reads)."""
    columns = (
        "c.id, c.provider, c.uid, c.wa_id, c.user_id, c.profile_name, c.public_id, r.id, r.status"
    )
    sql = (
        f"SELECT {columns} FROM {quote(Customer._meta.db_table)} c"
        f" LEFT JOIN {quote(Room._meta.db_table)} r"
        " ON r.customer_id = c.id AND r.line = %s AND r.status <> %s"
        " WHERE c.provider = %s AND c.uid = %s ORDER BY r.id LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [line, Room.Status.CLOSED.value, provider, uid])
        return cursor.fetchone()


def open_route_read_orm(*, provider: str, uid: str, line: str = "") -> tuple | None:
    customer = (
        Customer.objects.filter(provider=provider, uid=uid)
        .values_list("id", "provider", "uid", "wa_id", "user_id", "profile_name", "public_id")
        .first()
    )
    if customer is None:
        return None
    room = (
        Room.objects.filter(customer_id=customer[0], line=line)
        .exclude(status=Room.Status.CLOSED)
        .order_by("id")
        .values_list("id", "status")
        .first()
    )
    return (*customer, *(room or (None, None)))
