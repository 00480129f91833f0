"""Outbound messages: the send, its result, and the statuses Meta reports afterwards."""

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from chatbridge.http import VendorError
from chatbridge.metrics import TURN_STAGE, WHATSAPP_SENDS, timed
from rooms.delivery.statements import outbound_sent_update
from rooms.events import room_event_record
from rooms.models import Message, Room
from rooms.whatsapp.client import WhatsAppError, whatsapp_client
from rooms.whatsapp.webhook import StatusUpdate
from users.models import mask_uid
from users.selectors import CustomerRef

logger = logging.getLogger("chatbridge.delivery")


@dataclass(frozen=True)
class TurnTarget:
    """The customer a message goes to (carried in the task so the worker reads no customer)."""

    provider: str
    uid: str
    wa_id: str
    user_id: str
    watson_user_id: str


def turn_target(customer: CustomerRef) -> dict[str, str]:
    """Who a turn or a send answers, as plain JSON for the task row."""
    return {
        "provider": customer.provider,
        "uid": customer.uid,
        "wa_id": customer.wa_id,
        "user_id": customer.user_id,
        "watson_user_id": customer.public_id,
    }


def outbound_deliver(message: Message, target: TurnTarget, *, in_agents_room: bool = False) -> bool:
    """Send a stored outbound message; its row records the result. False if it failed. An agent's
    message, or any in a room the agents have (`in_agents_room`), records its ticks as events."""
    try:
        with timed(TURN_STAGE, "send"):
            wa_message_id = whatsapp_client().send(
                to=target.wa_id, recipient_user_id=target.user_id, body=message.payload
            )
    except VendorError as error:
        code = error.code if isinstance(error, WhatsAppError) else None
        WHATSAPP_SENDS.labels(result="failed", code=str(code or "")).inc()
        logger.warning("send to %s failed (code %s): %s", mask_uid(target.uid), code, error)
        outbound_failed(
            message=message, code=code, detail=str(error), in_agents_room=in_agents_room
        )
        return False
    WHATSAPP_SENDS.labels(result="sent", code="").inc()
    outbound_sent(message=message, wa_message_id=wa_message_id, in_agents_room=in_agents_room)
    return True


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
        in_agents_room = message.room.status in (Room.Status.QUEUED, Room.Status.ASSIGNED)
        Message.objects.filter(pk=message.pk).update(**changes)
        _status_event(message, changes, in_agents_room=in_agents_room)
    return True


def _status_event(message: Message, changes: dict[str, object], *, in_agents_room: bool) -> None:
    """A message of an agents' room changing status: the consoles watching it show the tick.
    Bot replies in bot rooms, which no console shows, record nothing."""
    if message.author != Message.Author.AGENT and not in_agents_room:
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


def outbound_sent(*, message: Message, wa_message_id: str, in_agents_room: bool = False) -> None:
    # Only from pending: a status notification may have overtaken the send's own answer.
    with _atomic_if_evented(message, in_agents_room):
        if outbound_sent_update(message_id=message.pk, wa_message_id=wa_message_id):
            changes: dict[str, object] = {
                "wa_message_id": wa_message_id,
                "status": Message.Status.SENT,
            }
            _status_event(message, changes, in_agents_room=in_agents_room)


def outbound_failed(
    *, message: Message, code: int | None, detail: str, in_agents_room: bool = False
) -> None:
    changes: dict[str, object] = {
        "status": Message.Status.FAILED,
        "error_code": code,
        "error_detail": detail[:1000],
    }
    with _atomic_if_evented(message, in_agents_room):
        updated = (
            Message.objects.filter(pk=message.pk)
            .exclude(status=Message.Status.FAILED)
            .update(**changes, updated_at=timezone.now())
        )
        if updated:
            _status_event(message, changes, in_agents_room=in_agents_room)


def _atomic_if_evented(message: Message, in_agents_room: bool) -> AbstractContextManager:
    """A bot reply's status is one UPDATE; one the agents watch also records an event."""
    watched = in_agents_room or message.author == Message.Author.AGENT
    return transaction.atomic() if watched else nullcontext()
