"""Inbound: what a provider (Meta, Twilio) sends, stored. Each service owns its transaction; the
turn runs after it.

The webhook's path for a message (`inbound_message_receive`) is built around three guarantees:
- one open room per customer, decided by a database constraint and a per-customer lock;
- each message stored once, decided by the unique WhatsApp message id;
- a cached room is only a hint: the write that stores the message checks it still holds.
"""

import datetime as dt
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass, replace

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chatbridge.cache import ACTIVE_ROOM_TTL, active_room_cache_key, cache_set
from chatbridge.locks import CUSTOMER_STORE, lock_for_transaction
from chatbridge.logs import log_bind
from chatbridge.metrics import WEBHOOK_STAGE
from chatbridge.statements import one_round_trip_usable
from chatbridge.tasks import enqueue_with_transaction
from rooms.bot.tasks import room_turn, survey_turn
from rooms.conversation.services import room_queue_locked
from rooms.delivery.services import status_update_apply, turn_target
from rooms.events import message_data, room_event_publish, room_event_record
from rooms.inbound.selectors import (
    RoomRef,
    inbound_route_get,
    inbound_route_read,
    quoted_message,
    room_open_get,
    survey_room_get,
)
from rooms.inbound.statements import message_insert, warm_store
from rooms.lines import ServedLines, line_key
from rooms.media.tasks import media_fetch_soon
from rooms.models import Message, MessageTemplate, Room, UnusableItem
from rooms.whatsapp.webhook import (
    InboundMessage,
    MessageChange,
    Notification,
    SkippedItem,
    TemplateStatus,
)
from users.models import Customer, mask_uid
from users.selectors import CustomerRef
from users.services import customer_cache_fill, customer_get_or_create, customer_number_change

logger = logging.getLogger("chatbridge.rooms")

# How long this thread spent enqueueing turns (the webhook's "enqueue" stage).
_enqueue_clock = threading.local()

# Inbound items that are not a customer's words: stored (and shown to the agents), never answered
# by the bot. A customer's own content that Watson cannot read (an image, a location) is answered.
_NO_TURN_TYPES = {Message.Type.REACTION, Message.Type.SYSTEM, Message.Type.UNSUPPORTED}


@dataclass(frozen=True)
class NotificationResult:
    stored: int = 0
    duplicates: int = 0
    statuses: int = 0
    skipped: int = 0  # items chatbridge could not use, kept as UnusableItem rows


def notification_handle(
    *,
    notification: Notification,
    lines: ServedLines | None = None,
    signed_with: str = "",
) -> NotificationResult:
    """Everything in one webhook POST; each message and status in its own transaction, the
    unusable items in one statement of their own. With `lines` (Meta's: the business numbers
    served, rooms/lines.py), a message to a number not served, or signed by another app than
    its number's, is kept as an unusable item: stored and flagged, never answered."""
    stored = duplicates = statuses = 0
    skipped = list(notification.skipped)
    for message in notification.messages:
        refusal = _line_refusal(message, lines, signed_with) if lines is not None else ""
        if refusal:
            skipped.append(SkippedItem("message", refusal, message.payload, message.wa_message_id))
        elif inbound_message_receive(message=message) is None:
            duplicates += 1
        else:
            stored += 1
    for update in notification.statuses:
        statuses += status_update_apply(update=update)
    for template in notification.template_statuses:
        template_status_apply(update=template)
    for change in notification.changes:
        if not inbound_message_change(change=change):
            skipped.append(
                SkippedItem(
                    "message",
                    "changes a message chatbridge does not have",
                    change.payload,
                    change.wa_message_id,
                )
            )
    if skipped:  # the common POST has none, and pays no query for them
        unusable_items_keep(items=skipped)
    return NotificationResult(
        stored=stored, duplicates=duplicates, statuses=statuses, skipped=len(skipped)
    )


def _line_refusal(message: InboundMessage, served: ServedLines, signed_with: str) -> str:
    """Why a message may not be answered from the number it was sent to ("" if it may)."""
    line = served.get(line_key(message.phone_number_id))
    if line is None:
        return f"sent to WhatsApp number {message.phone_number_id}, which chatbridge does not serve"
    if not line.app_secret or line.app_secret != signed_with:
        return f"sent to WhatsApp number {message.phone_number_id} but signed by another app"
    if not line.token:
        return f"sent to WhatsApp number {message.phone_number_id}, whose token is not set"
    return ""


def template_status_apply(*, update: TemplateStatus) -> bool:
    """Meta approved, paused, rejected or disabled a template: agents are offered approved ones
    only. False if operators have not entered that template."""
    updated = MessageTemplate.objects.filter(name=update.name, language=update.language).update(
        status=update.event, status_reason=update.reason, status_updated_at=timezone.now()
    )
    logger.info("template %s (%s) is now %s", update.name, update.language, update.event)
    return bool(updated)


def inbound_message_change(*, change: MessageChange) -> bool:
    """A customer edited or deleted one of their messages: the stored message takes the new text
    (its first text stays in its payload, as WhatsApp sent it) or is marked deleted, and the
    agents' consoles are told. The bot is not asked anything. Applied once however often
    WhatsApp redelivers it (a later edit wins); False if chatbridge does not have the message."""
    edit = change.kind == "edit"
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("room")
            .filter(
                wa_message_id=change.original_id,
                direction=Message.Direction.INBOUND,
                room__customer__uid=change.uid,
                room__customer__provider=Customer.Provider.WHATSAPP,
            )
            .first()
        )
        if message is None:
            return False
        if edit:
            if not _edit_is_new(message, change):
                return True
            Message.objects.filter(pk=message.pk).update(
                text=change.text, edited_at=change.timestamp, updated_at=timezone.now()
            )
            data = {
                "id": message.pk,
                "text": change.text,
                "edited_at": change.timestamp.isoformat(),
            }
        else:
            if message.deleted_at is not None:
                return True
            Message.objects.filter(pk=message.pk).update(
                deleted_at=change.timestamp, updated_at=timezone.now()
            )
            data = {"id": message.pk, "deleted_at": change.timestamp.isoformat()}
        if message.room.status in Room.WITH_AGENTS:
            kind = "message.edited" if edit else "message.deleted"
            room_event_record(room_id=message.room_id, kind=kind, data=data)
    logger.info("message %s %s by the customer", message.pk, "edited" if edit else "deleted")
    return True


def unusable_items_keep(*, items: list[SkippedItem]) -> None:
    """Keep each item once, however often Meta redelivers it, and log it without its content
    (it may hold phone numbers and message text)."""
    rows: dict[str, UnusableItem] = {}
    for item in items:
        digest = _unusable_digest(item)
        rows.setdefault(
            digest,
            UnusableItem(
                kind=item.kind,
                reason=item.reason[:200],
                wa_message_id=item.wa_message_id,
                payload=item.payload,
                digest=digest,
            ),
        )
    # ON CONFLICT DO NOTHING on the digest: a redelivery adds no row and no error.
    UnusableItem.objects.bulk_create(list(rows.values()), ignore_conflicts=True, batch_size=500)
    for row in rows.values():
        logger.warning(
            "unusable webhook %s %s kept (%s): %s",
            row.kind,
            row.wa_message_id or "without id",
            row.digest[:12],
            row.reason,
        )


def _unusable_digest(item: SkippedItem) -> str:
    # Canonical JSON, so the same item hashes the same however Meta orders its keys.
    canonical = json.dumps([item.kind, item.payload], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def inbound_message_receive(*, message: InboundMessage) -> Message | None:
    """Store a customer's message in their open room (opening one if needed) and start its
    turn, and its file's fetch. Returns None when the message was stored before (a
    redelivery)."""
    stored = _receive(message)
    if stored is not None and stored.media_status == Message.MediaStatus.PENDING:
        media_fetch_soon(stored.pk)  # after the commit, off the request
    return stored


def _edit_is_new(message: Message, change: MessageChange) -> bool:
    # A redelivered edit changes nothing; of two edits, the later wins (of two in one second,
    # the first to arrive: WhatsApp's timestamps have no finer order to go by).
    return message.edited_at is None or change.timestamp > message.edited_at


def _receive(message: InboundMessage) -> Message | None:
    started = time.perf_counter()
    _enqueue_clock.seconds = 0.0
    provider = message.provider
    if message.type == Message.Type.SYSTEM and message.changed_to:
        # "Ana changed from …0003 to …0004": the same customer, with their history, under the
        # new number; the notice itself is stored in their room.
        customer_number_change(provider=provider, uid=message.uid, new_wa_id=message.changed_to)
        message = replace(message, uid=message.changed_to, wa_id=message.changed_to)
    # The business number written to: the customer's open room there (one per number).
    line = line_key(message.phone_number_id)
    cached_customer, cached_room = inbound_route_get(provider=provider, uid=message.uid, line=line)
    fast = one_round_trip_usable()
    read_customer, read_room = None, None
    if fast and cached_customer is None:
        # A miss (Redis down, entry expired): customer and open room in one read.
        read_customer, read_room = inbound_route_read(provider=provider, uid=message.uid, line=line)
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
            opened = room_open_get(customer_id=customer.id, line=line)  # went with a change
            read_room = RoomRef(id=opened.pk, status=opened.status) if opened else None
        hint = cached_room or read_room
        stored = _receive_in_open_room(
            message=message, customer=customer, room=hint, fresh=fresh, started=started, line=line
        )
        if stored is not None:
            if cached_room is None and hint is not None:
                _room_cache_fill(customer, hint, line)
            return stored
        # No open room, one that no longer holds, or a redelivery: the general path.
    with transaction.atomic():
        # Orders this customer's messages across processes and makes room creation race-free.
        lock_for_transaction(CUSTOMER_STORE, customer.id)
        room = _room_for_message(customer=customer, cached=cached_room, line=line)
        # A survey's answer (rooms/bot/survey.py) is read however late it comes.
        survey = room.status == Room.Status.CLOSED
        turn = _needs_turn(room, message) and (fresh or survey)
        handled_at = None if turn else timezone.now()
        stored = message_insert(_inbound_row(room.id, message, handled_at=handled_at))
        if stored is None:
            transaction.set_rollback(True)  # nothing of a redelivery is kept, not even a room
            logger.info("duplicate message %s ignored", message.wa_message_id)
            return None
        if stored.handled_at is None:
            _turn_enqueue(
                room_id=room.id, message_id=stored.pk, customer=customer, line=line, survey=survey
            )
        elif _needs_turn(room, message):
            # Too old for the bot to answer as if it were now: a person follows it up.
            late = int((timezone.now() - message.timestamp).total_seconds() // 60)
            locked = Room.objects.select_for_update(of=("self",)).select_related("customer")
            room_queue_locked(
                room=locked.get(pk=room.id), note=f"Mensaje recibido con {late} min de retraso."
            )
        elif room.status in Room.WITH_AGENTS:
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
    line: str,
) -> Message | None:
    """The common cases in one round trip (rooms/inbound/statements.py): a message the bot
    answers in its room, or a message to the agents' room. None: take the general path."""
    if room is None:
        return None  # a new conversation: the general path opens its room
    if fresh and _needs_turn(room, message):
        return _receive_in_bot_room(
            message=message, customer=customer, room=room, started=started, line=line
        )
    if room.status in Room.WITH_AGENTS:
        return _receive_in_agents_room(
            message=message, customer=customer, room=room, started=started
        )
    return None


def _receive_in_bot_room(
    *, message: InboundMessage, customer: CustomerRef, room: RoomRef, started: float, line: str
) -> Message | None:
    """The common case (a returning customer, the bot's room in the cache) in one round trip:
    rooms/inbound/statements.py. None if nothing was stored: the caller takes the general path."""
    database = settings.TASKS_BACKEND == "database"
    target = turn_target(customer, line)
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
    (rooms/inbound/statements.py); published once committed. None: take the general path."""
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
    if result is None or result.event is None:
        return None
    room_event_publish(result.event)
    WEBHOOK_STAGE.labels(stage="store").observe(time.perf_counter() - started)
    _log_stored(stored, customer=customer, room=room)
    return stored


def _inbound_row(
    room_id: int, message: InboundMessage, *, handled_at: dt.datetime | None
) -> Message:
    """A customer's message as its row, unsaved."""
    row = Message(
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
    if message.media is not None:
        row.media_id = message.media.ref
        row.mime_type = message.media.mime_type
        row.file_name = message.media.filename
        row.media_sha256 = message.media.sha256
        row.media_status = Message.MediaStatus.PENDING
    if message.quotes:
        row.quoted = quoted_message(wa_message_id=message.quotes, room_id=room_id)
    return row


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
    """The bot answers it; in a closed room (one whose survey asks), the survey reads it."""
    return room.status in _TURN_STATUSES and message.type not in _NO_TURN_TYPES


_TURN_STATUSES = {Room.Status.BOT, Room.Status.CLOSED}


def _room_for_message(*, customer: CustomerRef, cached: RoomRef | None, line: str) -> RoomRef:
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
    room = room_open_get(customer_id=customer.id, line=line, lock=True)
    surveyed = survey_room_get(customer_id=customer.id, line=line) if room is None else None
    if surveyed is not None:
        # No open room, and their last one's survey is asking: this message is its answer.
        Room.objects.filter(pk=surveyed).update(last_customer_at=now)
        return RoomRef(id=surveyed, status=Room.Status.CLOSED)
    if room is None:
        room = Room.objects.create(
            customer_id=customer.id, line=line, last_activity_at=now, last_customer_at=now
        )
    else:
        Room.objects.filter(pk=room.pk).update(last_activity_at=now, last_customer_at=now)
    ref = RoomRef(id=room.pk, status=room.status)
    transaction.on_commit(lambda: _room_cache_fill(customer, ref, line))
    return ref


def _room_cache_fill(customer: CustomerRef, room: RoomRef, line: str) -> None:
    key = active_room_cache_key(provider=customer.provider, uid=customer.uid, line=line)
    cache_set(key, room.to_cache(), ttl=ACTIVE_ROOM_TTL)


def _turn_enqueue(
    *, room_id: int, message_id: int, customer: CustomerRef, line: str, survey: bool = False
) -> None:
    turn = survey_turn if survey else room_turn

    def enqueue() -> None:
        started = time.perf_counter()
        try:
            target = turn_target(customer, line)
            turn.enqueue(room_id=room_id, message_id=message_id, target=target)
        finally:
            # In immediate mode this is the whole turn, run after the commit.
            _enqueue_clock.seconds += time.perf_counter() - started

    enqueue_with_transaction(enqueue)
