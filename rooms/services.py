"""Writes on rooms and messages. Each service owns its transaction; vendor calls happen after it.

The webhook's path for a message (`inbound_message_receive`) is built around three guarantees:
- one open room per customer, decided by a database constraint and a per-customer lock;
- each message stored once, decided by the unique WhatsApp message id;
- a cached room is only a hint: the write that stores the message checks it still holds.
"""

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone

from chatbridge.cache import ACTIVE_ROOM_TTL, active_room_cache_key, cache_set
from chatbridge.locks import CUSTOMER_STORE, lock_for_transaction
from chatbridge.logs import log_bind
from chatbridge.metrics import WEBHOOK_STAGE
from chatbridge.sql import one_round_trip_usable
from rooms.events import (
    message_data,
    queue_changed_on_commit,
    room_event_publish,
    room_event_record,
)
from rooms.models import ClosureReason, Message, Room
from rooms.selectors import RoomRef, inbound_route_get, inbound_route_read, room_open_get
from rooms.warm_store import warm_store
from rooms.whatsapp import TEXT_BODY_MAX, InboundMessage, Notification, StatusUpdate, text_body
from users.models import Customer, mask_uid
from users.selectors import CustomerRef
from users.services import customer_cache_fill, customer_get_or_create

logger = logging.getLogger("chatbridge.rooms")

# How long this thread spent enqueueing turns (the webhook's "enqueue" stage).
_enqueue_clock = threading.local()

# Inbound messages the bot has nothing to say to: stored, and done.
_NO_TURN_TYPES = {Message.Type.REACTION}


@dataclass(frozen=True)
class NotificationResult:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0


def notification_handle(*, notification: Notification) -> NotificationResult:
    """Everything in one webhook POST; each message and status in its own transaction."""
    stored = duplicates = statuses = 0
    for message in notification.messages:
        if inbound_message_receive(message=message) is None:
            duplicates += 1
        else:
            stored += 1
    for update in notification.statuses:
        statuses += status_update_apply(update=update)
    return NotificationResult(stored=stored, duplicates=duplicates, statuses=statuses)


def inbound_message_receive(*, message: InboundMessage) -> Message | None:
    """Store a customer's message in their open room (opening one if needed) and start its
    turn. Returns None when the message was stored before (a redelivery)."""
    started = time.perf_counter()
    _enqueue_clock.seconds = 0.0
    provider = Customer.Provider.WHATSAPP
    cached_customer, cached_room = inbound_route_get(provider=provider, uid=message.uid)
    fast = one_round_trip_usable()
    read_customer, read_room = None, None
    if fast and cached_customer is None:
        # A miss (Redis down, entry expired): customer and open room in one read.
        read_customer, read_room = inbound_route_read(provider=provider, uid=message.uid)
    customer = customer_get_or_create(
        provider=provider,
        uid=message.uid,
        wa_id=message.wa_id,
        user_id=message.user_id,
        name=message.name,
        cached=cached_customer or read_customer,
    )
    if read_customer is not None and customer is read_customer:
        customer_cache_fill(customer)
    fresh = timezone.now() - message.timestamp <= dt.timedelta(
        seconds=settings.WEBHOOK_MAX_AGE_SECONDS
    )
    if fast:
        # The cached room, or the open room read without a lock: either is only a hint, which
        # the one-round-trip store checks under the lock.
        if cached_room is None and cached_customer is not None:
            opened = room_open_get(customer_id=customer.id)  # the entry went with a change
            read_room = RoomRef(id=opened.pk, status=opened.status) if opened else None
        hint = cached_room or read_room
        stored = _receive_in_open_room(
            message=message, customer=customer, room=hint, fresh=fresh, started=started
        )
        if stored is not None:
            if cached_room is None:
                _room_cache_fill(customer, hint)
            return stored
        # No open room, one that no longer holds, or a redelivery: the general path.
    with transaction.atomic():
        # Orders this customer's messages across processes and makes room creation race-free.
        lock_for_transaction(CUSTOMER_STORE, customer.id)
        room = _room_for_message(customer=customer, cached=cached_room)
        handled_at = None if _needs_turn(room, message) and fresh else timezone.now()
        stored = _message_insert(_inbound_row(room.id, message, handled_at=handled_at))
        if stored is None:
            transaction.set_rollback(True)  # nothing of a redelivery is kept, not even a room
            logger.info("duplicate message %s ignored", message.wa_message_id)
            return None
        if stored.handled_at is None:
            _turn_enqueue(room_id=room.id, message_id=stored.pk, customer=customer)
        elif _needs_turn(room, message):
            # Too old for the bot to answer as if it were now: a person follows it up.
            late = int((timezone.now() - message.timestamp).total_seconds() // 60)
            locked = Room.objects.select_for_update(of=("self",)).select_related("customer")
            room_queue_locked(
                room=locked.get(pk=room.id), note=f"Mensaje recibido con {late} min de retraso."
            )
        elif room.status in (Room.Status.QUEUED, Room.Status.ASSIGNED):
            # The agents' room: the assigned agent sees it within the second.
            room_event_record(room_id=room.id, kind="message.new", data=message_data(stored))
    enqueue_seconds = _enqueue_clock.seconds
    WEBHOOK_STAGE.labels(stage="store").observe(time.perf_counter() - started - enqueue_seconds)
    if stored.handled_at is None:
        WEBHOOK_STAGE.labels(stage="enqueue").observe(enqueue_seconds)
    _log_stored(stored, customer=customer, room=room)
    return stored


def _receive_in_open_room(
    *,
    message: InboundMessage,
    customer: CustomerRef,
    room: RoomRef | None,
    fresh: bool,
    started: float,
) -> Message | None:
    """The common cases in one round trip (rooms/warm_store.py): a message the bot answers in
    its room, or a message to the agents' room. None: the caller takes the general path."""
    if room is None:
        return None  # a new conversation: the general path opens its room
    if fresh and _needs_turn(room, message):
        return _receive_in_bot_room(message=message, customer=customer, room=room, started=started)
    if room.status in (Room.Status.QUEUED, Room.Status.ASSIGNED):
        return _receive_in_agents_room(
            message=message, customer=customer, room=room, started=started
        )
    return None


def _receive_in_bot_room(
    *, message: InboundMessage, customer: CustomerRef, room: RoomRef, started: float
) -> Message | None:
    """The common case (a returning customer, the bot's room in the cache) in one round trip:
    rooms/warm_store.py. None if nothing was stored: the caller takes the general path."""
    from rooms.tasks import room_turn

    database = settings.TASKS_BACKEND == "database"
    target = turn_target(customer)
    stored = _inbound_row(room.id, message, handled_at=None)
    result = warm_store(
        customer_id=customer.id,
        room_id=room.id,
        room_status=room.status,
        message=stored,
        now=timezone.now(),
        # Database mode: the turn's task row is written by the same statement.
        task=room_turn if database else None,
        task_kwargs={"room_id": room.id, "target": target},
    )
    if result is None:
        return None
    committed = time.perf_counter()
    if not database:
        room_turn.enqueue(room_id=room.id, message_id=stored.pk, target=target)
    WEBHOOK_STAGE.labels(stage="store").observe(committed - started)
    WEBHOOK_STAGE.labels(stage="enqueue").observe(time.perf_counter() - committed)
    _log_stored(stored, customer=customer, room=room)
    return stored


def _receive_in_agents_room(
    *, message: InboundMessage, customer: CustomerRef, room: RoomRef, started: float
) -> Message | None:
    """A message to the agents' room the cache names, with its room event, in one round trip
    (rooms/warm_store.py); published once committed. None: the caller takes the general path."""
    now = timezone.now()
    stored = _inbound_row(room.id, message, handled_at=now)  # the agents answer it, no turn
    result = warm_store(
        customer_id=customer.id,
        room_id=room.id,
        room_status=room.status,
        message=stored,
        now=now,
        event_kind="message.new",
    )
    if result is None:
        return None
    room_event_publish(result.event)
    WEBHOOK_STAGE.labels(stage="store").observe(time.perf_counter() - started)
    _log_stored(stored, customer=customer, room=room)
    return stored


def _inbound_row(
    room_id: int, message: InboundMessage, *, handled_at: dt.datetime | None
) -> Message:
    """A customer's message as its row, unsaved."""
    return Message(
        room_id=room_id,
        direction=Message.Direction.INBOUND,
        author=Message.Author.CUSTOMER,
        type=message.type,
        text=message.text,
        payload=message.payload,
        wa_message_id=message.wa_message_id,
        wa_timestamp=message.timestamp,
        handled_at=handled_at,
    )


def _log_stored(stored: Message, *, customer: CustomerRef, room: RoomRef) -> None:
    log_bind(room_id=room.id)
    logger.info(
        "stored message %s from %s in room %s (%s)",
        stored.pk,
        mask_uid(customer.uid),
        room.id,
        room.status,
    )


def _needs_turn(room: RoomRef, message: InboundMessage) -> bool:
    return room.status == Room.Status.BOT and message.type not in _NO_TURN_TYPES


def _room_for_message(*, customer: CustomerRef, cached: RoomRef | None) -> RoomRef:
    now = timezone.now()
    if cached is not None:
        # The cached room is trusted only if the row still says so: this UPDATE is the check,
        # and its row lock keeps the room from closing until the message is committed.
        touched = Room.objects.filter(
            pk=cached.id, customer_id=customer.id, status=cached.status
        ).update(last_activity_at=now, last_customer_at=now)
        if touched:
            return cached
        logger.info("cached room %s of %s was stale", cached.id, mask_uid(customer.uid))
    room = room_open_get(customer_id=customer.id, lock=True)
    if room is None:
        room = Room.objects.create(
            customer_id=customer.id, last_activity_at=now, last_customer_at=now
        )
    else:
        Room.objects.filter(pk=room.pk).update(last_activity_at=now, last_customer_at=now)
    ref = RoomRef(id=room.pk, status=room.status)
    transaction.on_commit(lambda: _room_cache_fill(customer, ref))
    return ref


def _room_cache_fill(customer: CustomerRef, room: RoomRef) -> None:
    key = active_room_cache_key(provider=customer.provider, uid=customer.uid)
    cache_set(key, room.to_cache(), ttl=ACTIVE_ROOM_TTL)


def _message_insert(message: Message) -> Message | None:
    """INSERT ... ON CONFLICT DO NOTHING on the WhatsApp id: the database decides what is a
    duplicate, also when two deliveries race on two processes. None for a duplicate."""
    fields = [field for field in Message._meta.concrete_fields if not field.primary_key]
    values = [field.get_db_prep_save(field.pre_save(message, True), connection) for field in fields]
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    # Only identifiers from our own model are interpolated; every value is a parameter.
    sql = (
        f"INSERT INTO {connection.ops.quote_name(Message._meta.db_table)} ({columns}) "  # noqa: S608
        f"VALUES ({placeholders}) ON CONFLICT ({connection.ops.quote_name('wa_message_id')}) "
        f"DO NOTHING RETURNING {connection.ops.quote_name('id')}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone()
    if row is None:
        return None
    message.pk = row[0]
    message._state.adding = False
    return message


def _turn_enqueue(*, room_id: int, message_id: int, customer: CustomerRef) -> None:
    from rooms.tasks import room_turn

    def enqueue() -> None:
        started = time.perf_counter()
        try:
            room_turn.enqueue(room_id=room_id, message_id=message_id, target=turn_target(customer))
        finally:
            # In immediate mode this is the whole turn, run after the commit.
            _enqueue_clock.seconds += time.perf_counter() - started

    _enqueue_with_transaction(enqueue)


def _enqueue_with_transaction(enqueue: Callable[[], object]) -> None:
    """Database backend: the task row commits with what it works on, or neither does.
    Immediate backend: the task runs once that is committed."""
    if settings.TASKS_BACKEND == "database":
        enqueue()
    else:
        transaction.on_commit(enqueue)


def turn_target(customer: CustomerRef) -> dict[str, str]:
    """Who the turn answers, as plain JSON for the task row."""
    return {
        "provider": customer.provider,
        "uid": customer.uid,
        "wa_id": customer.wa_id,
        "user_id": customer.user_id,
        "watson_user_id": customer.public_id,
    }


# --- delivery statuses --------------------------------------------------------------------------

# A status only moves forward; failed can follow any of the others and nothing follows it.
_STATUS_RANK = {
    Message.Status.PENDING: 0,
    Message.Status.SENT: 1,
    Message.Status.DELIVERED: 2,
    Message.Status.READ: 3,
    Message.Status.FAILED: 4,
}


def status_update_apply(*, update: StatusUpdate) -> bool:
    """Apply a status notification to our outbound message; False if it would move backwards
    or the message is not ours."""
    new = Message.Status(update.status)
    earlier = [status for status, rank in _STATUS_RANK.items() if rank < _STATUS_RANK[new]]
    changes: dict[str, object] = {
        "status": new,
        "wa_timestamp": update.timestamp,
        "updated_at": timezone.now(),
    }
    if new == Message.Status.FAILED:
        changes.update(error_code=update.error_code, error_detail=update.error_detail)
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .filter(
                wa_message_id=update.wa_message_id,
                direction=Message.Direction.OUTBOUND,
                status__in=earlier,
            )
            .only("id", "room_id", "author", "status", "room__status")
            .select_related("room")
            .first()
        )
        if message is None:
            return False
        message.in_agents_room = message.room.status in (Room.Status.QUEUED, Room.Status.ASSIGNED)
        Message.objects.filter(pk=message.pk).update(**changes)
        _status_event(message, changes)
    return True


def _status_event(message: Message, changes: dict[str, object]) -> None:
    """A message of an agents' room changing status: the consoles watching it show the tick.
    Bot replies in bot rooms, which no console shows, record nothing."""
    watched = message.author == Message.Author.AGENT or getattr(message, "in_agents_room", False)
    if not watched:
        return
    room_event_record(
        room_id=message.room_id,
        kind="message.status",
        data={
            "id": message.pk,
            "status": changes["status"],
            "error_code": changes.get("error_code"),
            "error_detail": changes.get("error_detail", ""),
        },
    )


def outbound_sent(*, message: Message, wa_message_id: str) -> None:
    # Only from pending: a status notification may have overtaken the send's own answer.
    changes = {"wa_message_id": wa_message_id, "status": Message.Status.SENT}
    table = connection.ops.quote_name(Message._meta.db_table)
    sent, pending = Message.Status.SENT.value, Message.Status.PENDING.value
    with _atomic_if_evented(message), connection.cursor() as cursor:
        # Once per reply sent: a plain statement, no query building (docs/BENCHMARKS.md).
        cursor.execute(
            f"UPDATE {table} SET wa_message_id = %s, status = %s, updated_at = %s"  # noqa: S608
            " WHERE id = %s AND status = %s",
            [wa_message_id, sent, timezone.now(), message.pk, pending],
        )
        if cursor.rowcount:
            _status_event(message, changes)


def outbound_failed(*, message: Message, code: int | None, detail: str) -> None:
    changes = {"status": Message.Status.FAILED, "error_code": code, "error_detail": detail[:1000]}
    with _atomic_if_evented(message):
        updated = (
            Message.objects.filter(pk=message.pk)
            .exclude(status=Message.Status.FAILED)
            .update(**changes, updated_at=timezone.now())
        )
        if updated:
            _status_event(message, changes)


def _atomic_if_evented(message: Message) -> AbstractContextManager:
    """A bot reply's status is one UPDATE; an agent's also records an event with it."""
    return transaction.atomic() if message.author == Message.Author.AGENT else nullcontext()


# --- room lifecycle -----------------------------------------------------------------------------


def room_queue(*, room_id: int, note: str, from_status: str = Room.Status.BOT) -> bool:
    """Hand a room to the agents' queue; False if it was no longer in `from_status`."""
    with transaction.atomic():
        room = (
            Room.objects.select_for_update(of=("self",)).select_related("customer").get(pk=room_id)
        )
        if room.status != from_status:
            return False
        room_queue_locked(room=room, note=note)
    return True


def room_queue_locked(*, room: Room, note: str) -> None:
    """The hand-off itself, on a room the caller locked inside its transaction."""
    room.status = Room.Status.QUEUED
    room.queued_at = timezone.now()
    room.handoff_note = note[:2000]
    room.save(update_fields=["status", "queued_at", "handoff_note"])
    room_event_record(room_id=room.pk, kind="room.queued", data={"note": room.handoff_note})
    queue_changed_on_commit()
    transaction.on_commit(_assignment_run)
    logger.info("room %s queued: %s", room.pk, note[:200])


def room_close(
    *,
    room: Room | None = None,
    room_id: int | None = None,
    by: AbstractBaseUser | None = None,
    reason: str = "",
    closure_reason: ClosureReason | None = None,
    agent_only: bool = False,
    only_if: Callable[[Room], bool] | None = None,
    now: dt.datetime | None = None,
) -> bool:
    """Close an open room: its cache entries go, its agent's capacity frees up, the queue is
    served, and the customer gets the closing text. False if it was closed already (or
    `only_if`, checked on the locked row, says no). With `agent_only`, `by` must be the agent the
    room is assigned to (ActionError otherwise)."""
    from rooms.assignment import ActionError

    room_id = room.pk if room is not None else room_id
    reason = reason or (closure_reason.title if closure_reason else "")
    with transaction.atomic():
        locked = (
            Room.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(pk=room_id)
            .first()
        )
        if locked is None:
            raise ActionError("not_found", "no such room")
        if agent_only and (locked.status != Room.Status.ASSIGNED or locked.agent_id != by.pk):
            raise ActionError("not_your_room", "this room is not assigned to you")
        if locked.status == Room.Status.CLOSED or (only_if is not None and not only_if(locked)):
            return False
        was_queued = locked.status == Room.Status.QUEUED
        locked.status = Room.Status.CLOSED
        locked.closed_at = now or timezone.now()
        locked.closed_by = by
        locked.closed_reason = reason[:200]
        locked.closure_reason = closure_reason
        locked.save(
            update_fields=["status", "closed_at", "closed_by", "closed_reason", "closure_reason"]
        )
        room_event_record(
            room_id=locked.pk,
            kind="room.closed",
            data={"reason": locked.closed_reason, "by": by.pk if by else None},
            actor_id=by.pk if by else None,
        )
        if settings.ROOM_CLOSED_MESSAGE:
            _system_message_send(room=locked, text=settings.ROOM_CLOSED_MESSAGE)
        if was_queued:
            queue_changed_on_commit()
        transaction.on_commit(_assignment_run)
    logger.info("room %s closed (%s)", room_id, reason or "no reason given")
    return True


def agent_message_send(*, room_id: int, agent: AbstractBaseUser, text: str) -> Message:
    """Store an agent's message in their room and send it once committed."""
    from rooms.assignment import ActionError

    text = text.strip()
    if not text:
        raise ActionError("invalid", "the message is empty")
    if len(text) > TEXT_BODY_MAX:
        raise ActionError("invalid", f"the message is longer than {TEXT_BODY_MAX} characters")
    with transaction.atomic():
        room = (
            Room.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(pk=room_id)
            .first()
        )
        if room is None or room.status != Room.Status.ASSIGNED or room.agent_id != agent.pk:
            raise ActionError("not_your_room", "this room is not assigned to you")
        message = Message.objects.create(
            room=room,
            direction=Message.Direction.OUTBOUND,
            author=Message.Author.AGENT,
            agent_id=agent.pk,
            type=Message.Type.TEXT,
            text=text,
            payload=text_body(text),
            status=Message.Status.PENDING,
        )
        Room.objects.filter(pk=room.pk).update(last_activity_at=message.created_at)
        room_event_record(
            room_id=room.pk, kind="message.new", data=message_data(message), actor_id=agent.pk
        )
        _deliver_on_commit(message, room.customer)
    return message


def _system_message_send(*, room: Room, text: str) -> Message:
    message = Message.objects.create(
        room=room,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.SYSTEM,
        type=Message.Type.TEXT,
        text=text,
        payload=text_body(text),
        status=Message.Status.PENDING,
    )
    _deliver_on_commit(message, room.customer)
    return message


def _deliver_on_commit(message: Message, customer: Customer) -> None:
    from rooms.tasks import message_deliver

    enqueue = partial(
        message_deliver.enqueue,
        message_id=message.pk,
        target=turn_target(CustomerRef.of(customer)),
    )
    _enqueue_with_transaction(enqueue)


def _assignment_run() -> None:
    from rooms.assignment import assignment_run

    assignment_run()
