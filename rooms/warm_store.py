"""The webhook's common case in one round trip: a returning customer writing to the bot room the
cache names.

`inbound_message_receive` (rooms/services.py) stores a message in one transaction: the customer's
ordering lock, the UPDATE that checks the cached room still holds, the INSERT of the message and,
in database task mode, the INSERT of its turn's task row. Through the ORM that is seven round
trips and most of the webhook's CPU (docs/BENCHMARKS.md). This module sends the same statements
as one query string (chatbridge/sql.py: one implicit transaction, committed before PostgreSQL
answers; each statement's snapshot taken when it starts, so the room is read once the lock is
held).

The message INSERT takes its row from the room UPDATE's RETURNING, and the task INSERT from the
message's, so a stale room (closed, handed to the agents) or a redelivered message stores
nothing and touches nothing; the caller then takes the general path, which decides either case
as it always did. The task row is the one `Task.enqueue` writes with django-tasks-db (tests
compare the two column by column), without its `task_enqueued` signal: nothing here listens to it.
"""

import datetime as dt

from django_tasks.base import Task
from django_tasks_db.models import DBTaskResult, get_date_max

from chatbridge.locks import CUSTOMER_STORE, advisory_key
from chatbridge.sql import insert_select, quote, run_statements
from rooms.models import Message, Room


def warm_store(
    *,
    customer_id: int,
    room_id: int,
    room_status: str,
    message: Message,
    now: dt.datetime,
    task: Task | None = None,
    task_kwargs: dict | None = None,
) -> int | None:
    """Store `message` (unsaved, its room set) in the room if the room is still this customer's
    and still `room_status`, and the message is new; with `task`, also its task row, whose
    kwargs get the message's id as `message_id`. The message's id, or None if nothing was
    stored (and nothing was changed). Call only where `one_round_trip_usable()`."""
    room_table = quote(Room._meta.db_table)
    message_table = quote(Message._meta.db_table)
    message_insert, message_params = insert_select(Message, message, source="r")
    statements = [
        "SELECT pg_advisory_xact_lock(%s, %s)",
        f"""WITH r AS (
            UPDATE {room_table} SET last_activity_at = %s, last_customer_at = %s
            WHERE id = %s AND customer_id = %s AND status = %s
                AND NOT EXISTS (SELECT 1 FROM {message_table} WHERE wa_message_id = %s)
            RETURNING id
        ), m AS (
            {message_insert} ON CONFLICT (wa_message_id) DO NOTHING RETURNING id
        )""",  # noqa: S608 - identifiers of our own models; every value is a parameter
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
        row = DBTaskResult(
            id=task.get_backend()._get_id(),
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
    statements[1] += " SELECT (SELECT id FROM m)"
    _, [(message_id,)] = run_statements(statements, params)
    return message_id
