"""Outbound messages: the send, its result, and the statuses Meta reports afterwards."""

import datetime as dt
import logging
import re
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from enum import StrEnum

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chatbridge.http import VendorConnectionLost, VendorError, VendorTimeout
from chatbridge.metrics import TURN_STAGE, WHATSAPP_SENDS, timed
from rooms.delivery.statements import outbound_sent_update
from rooms.events import room_event_record
from rooms.lines import line_sender
from rooms.models import Message, Room
from rooms.providers import provider_for
from rooms.whatsapp.client import media_id_body, whatsapp_client
from rooms.whatsapp.webhook import StatusUpdate
from users.models import Customer, mask_uid
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
    # The business number it goes out from (Room.line: "" for the main one).
    line: str = ""


def turn_target(customer: CustomerRef, line: str = "") -> dict[str, str]:
    """Who a turn or a send answers, and from which business number, as plain JSON for the task
    row."""
    return {
        "line": line,
        "provider": customer.provider,
        "uid": customer.uid,
        "wa_id": customer.wa_id,
        "user_id": customer.user_id,
        "watson_user_id": customer.public_id,
    }


class SendOutcome(StrEnum):
    SENT = "sent"  # WhatsApp took it and named its id
    FAILED = "failed"  # WhatsApp refused it, or was never reached
    UNKNOWN = "unknown"  # no answer: WhatsApp's status (or, after the grace, a resend) settles it


# What a send puts in biz_opaque_callback_data: Meta echoes it in the send's statuses, so a status
# names chatbridge's message even when the send's own answer (with WhatsApp's id) was lost.
_REFERENCE = re.compile(r"chatbridge:([1-9][0-9]{0,18})")


def send_reference(message_id: int) -> str:
    return f"chatbridge:{message_id}"


def message_id_from_reference(reference: str) -> int | None:
    match = _REFERENCE.fullmatch(reference)
    return int(match[1]) if match else None


def send_lease_until(now: dt.datetime, *, place: int = 0) -> dt.datetime:
    """When a send started at `now` stops being its owner's; the `place`-th of several sent one
    after another (a reply of several messages) gets as many leases more."""
    return now + dt.timedelta(seconds=settings.WHATSAPP_SEND_LEASE_SECONDS * (place + 1))


def sends_takeable(*, pending_before: dt.datetime | None = None) -> Q:
    """Outbound messages whose send nobody holds: pending (since before `pending_before`, when
    given), or sending with a lease that ended more than WHATSAPP_SEND_GRACE_SECONDS ago and no
    status from WhatsApp since."""
    expired = timezone.now() - dt.timedelta(seconds=settings.WHATSAPP_SEND_GRACE_SECONDS)
    pending = Q(status=Message.Status.PENDING)
    if pending_before is not None:
        pending &= Q(created_at__lt=pending_before)
    lapsed = Q(status=Message.Status.SENDING, send_lease_until__lt=expired)
    return Q(direction=Message.Direction.OUTBOUND) & (pending | lapsed)


def outbound_take(*, message_id: int, provider: str, line: str = "") -> Message | None:
    """Take the send of a stored message (outbound_claim), once its file, if it has one, is
    uploaded: the upload is not the send (repeating it costs an unused media id, never a second
    message), so it runs before the claim, outside the send's lease."""
    if not outbound_upload(message_id=message_id, provider=provider, line=line):
        return None
    return outbound_claim(message_id=message_id)


def outbound_upload(*, message_id: int, provider: str, line: str = "") -> bool:
    """An agent's file still to upload: uploaded to WhatsApp and its body (by media id) kept, so
    every send of it, a resend after a crash too, sends the same upload. False if the upload
    failed (the message is failed, with WhatsApp's code)."""
    message = (
        Message.objects.filter(
            pk=message_id, direction=Message.Direction.OUTBOUND, status=Message.Status.PENDING
        )
        .exclude(file="")
        .filter(payload={})
        .select_related("room")
        .first()
    )
    if message is None:
        return True  # nothing to upload: a text, uploaded already, or not pending
    in_agents_room = message.room.status in Room.WITH_AGENTS
    if provider != Customer.Provider.WHATSAPP:
        detail = f"files cannot be sent through {provider}"
        outbound_failed(message=message, code=None, detail=detail, in_agents_room=in_agents_room)
        return False
    try:
        with message.file.open("rb") as stored:
            content = stored.read()
        media_id = whatsapp_client(line_sender(line)).media_upload(
            content, mime_type=message.mime_type, filename=message.file_name
        )
    except VendorError as error:
        logger.warning("upload of message %s failed (code %s): %s", message.pk, error.code, error)
        outbound_failed(
            message=message,
            code=error.code,
            detail=f"upload failed: {error}",
            in_agents_room=in_agents_room,
        )
        return False
    body = media_id_body(message.type, media_id, caption=message.text, filename=message.file_name)
    # Two uploads at once (the task and recovery): the first kept wins, the other id is unused.
    Message.objects.filter(pk=message.pk, payload={}).update(media_id=media_id, payload=body)
    return True


def outbound_claim(*, message_id: int) -> Message | None:
    """Take the send of a stored message: a pending one, or one whose sender's lease ended more
    than WHATSAPP_SEND_GRACE_SECONDS ago with no status from WhatsApp. None if someone else holds
    it, it is settled, or it was sent WHATSAPP_SEND_MAX_TRIES times already (then it is failed:
    it may well have arrived, and is not sent again)."""
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .filter(sends_takeable(), pk=message_id)
            .first()
        )
        if message is None:
            return None
        if message.send_attempts >= settings.WHATSAPP_SEND_MAX_TRIES:
            detail = (
                f"sent {message.send_attempts} times with no answer and no status from "
                "WhatsApp; not sent again (it may have arrived)"
            )
            room_status = Room.objects.values_list("status", flat=True).get(pk=message.room_id)
            in_agents_room = room_status in Room.WITH_AGENTS
            _failed_update(message, code=None, detail=detail, in_agents_room=in_agents_room)
            return None
        message.status = Message.Status.SENDING
        message.send_lease_until = send_lease_until(timezone.now())
        message.send_attempts += 1
        message.save(update_fields=["status", "send_lease_until", "send_attempts", "updated_at"])
    return message


def outbound_deliver(
    message: Message, target: TurnTarget, *, in_agents_room: bool = False
) -> SendOutcome:
    """Send a stored message whose send the caller holds (`sending`, stored so by the turn or
    taken with outbound_claim); its row records the result. An agent's message, or any in a room
    the agents have (`in_agents_room`), records its ticks as events."""
    try:
        with timed(TURN_STAGE, "send"):
            wa_message_id = provider_for(target.provider).send(
                to=target.wa_id,
                recipient_user_id=target.user_id,
                body=message.payload,
                reference=send_reference(message.pk),
                sender=line_sender(target.line),
            )
    except (VendorTimeout, VendorConnectionLost) as error:
        # WhatsApp may have taken it: not sent again now (README, "Delivery").
        WHATSAPP_SENDS.labels(result="unknown", code="").inc()
        logger.warning("send to %s unanswered: %s", mask_uid(target.uid), error)
        detail = f"{error}; waiting for WhatsApp's status"[:1000]
        Message.objects.filter(pk=message.pk, status=Message.Status.SENDING).update(
            error_detail=detail, updated_at=timezone.now()
        )
        return SendOutcome.UNKNOWN
    except VendorError as error:
        code = error.code
        WHATSAPP_SENDS.labels(result="failed", code=str(code or "")).inc()
        logger.warning("send to %s failed (code %s): %s", mask_uid(target.uid), code, error)
        outbound_failed(
            message=message, code=code, detail=str(error), in_agents_room=in_agents_room
        )
        return SendOutcome.FAILED
    WHATSAPP_SENDS.labels(result="sent", code="").inc()
    outbound_sent(message=message, wa_message_id=wa_message_id, in_agents_room=in_agents_room)
    return SendOutcome.SENT


# A status only moves forward; failed can follow any of the others and nothing follows it.
_STATUS_RANK = {
    Message.Status.PENDING: 0,
    Message.Status.SENDING: 1,
    Message.Status.SENT: 2,
    Message.Status.DELIVERED: 3,
    Message.Status.READ: 4,
    Message.Status.FAILED: 5,
}


def status_update_apply(*, update: StatusUpdate) -> bool:
    """Apply a status notification to our outbound message; False if it would move backwards
    or the message is not ours. A status carrying our reference settles a send whose own answer
    never came (the message has no WhatsApp id yet): it records the id too."""
    new = Message.Status(update.status)
    earlier = [status for status, rank in _STATUS_RANK.items() if rank < _STATUS_RANK[new]]
    changes: dict[str, object] = {
        "status": new,
        "wa_timestamp": update.timestamp,
        "send_lease_until": None,
        "updated_at": timezone.now(),
    }
    if new == Message.Status.FAILED:
        changes.update(error_code=update.error_code, error_detail=update.error_detail)
    ours = Q(wa_message_id=update.wa_message_id)
    message_id = message_id_from_reference(update.reference)
    if message_id is not None:
        ours |= Q(pk=message_id, wa_message_id__isnull=True)
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .filter(ours, direction=Message.Direction.OUTBOUND, status__in=earlier)
            .only("id", "room_id", "author", "status", "wa_message_id", "room__status")
            .select_related("room")
            .first()
        )
        if message is None:
            return False
        if message.wa_message_id is None:
            changes["wa_message_id"] = update.wa_message_id
        in_agents_room = message.room.status in Room.WITH_AGENTS
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
    # Only while unsettled: a status notification may have overtaken the send's own answer.
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
    with _atomic_if_evented(message, in_agents_room):
        _failed_update(message, code=code, detail=detail, in_agents_room=in_agents_room)


def _failed_update(
    message: Message, *, code: int | None, detail: str, in_agents_room: bool = False
) -> None:
    changes: dict[str, object] = {
        "status": Message.Status.FAILED,
        "error_code": code,
        "error_detail": detail[:1000],
    }
    updated = (
        Message.objects.filter(pk=message.pk)
        .exclude(status=Message.Status.FAILED)
        .update(**changes, send_lease_until=None, updated_at=timezone.now())
    )
    if updated:
        _status_event(message, changes, in_agents_room=in_agents_room)


def _atomic_if_evented(message: Message, in_agents_room: bool) -> AbstractContextManager:
    """A bot reply's status is one UPDATE; one the agents watch also records an event."""
    watched = in_agents_room or message.author == Message.Author.AGENT
    return transaction.atomic() if watched else nullcontext()
