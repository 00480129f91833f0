"""A room's lifecycle: handed to the agents' queue, closed. Each service owns its transaction."""

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from rooms.areas import area_for_handoff, room_area_id
from rooms.conversation.survey import survey_due, survey_start_locked
from rooms.delivery.tasks import message_deliver_on_commit
from rooms.desk.assignment import assignment_run
from rooms.errors import ActionError
from rooms.events import queue_changed_on_commit, room_event_record
from rooms.lines import line_area_id
from rooms.models import ClosureReason, Message, Room
from rooms.whatsapp.client import text_body

logger = logging.getLogger("chatbridge.rooms")


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


def room_queue_locked(
    *, room: Room, note: str, transfer_info: dict[str, Any] | None = None
) -> None:
    """The hand-off itself, on a room the caller locked inside its transaction: into the queue
    of the area Watson's `transfer_info` names (rooms/areas.py), which is kept on the room."""
    room.status = Room.Status.QUEUED
    room.queued_at = timezone.now()
    room.first_queued_at = room.first_queued_at or room.queued_at
    room.handoff_note = note[:2000]
    room.transfer_info = transfer_info or {}
    room.area = area_for_handoff(room.transfer_info, default_id=line_area_id(room.line))
    room.save(
        update_fields=[
            "status",
            "queued_at",
            "first_queued_at",
            "handoff_note",
            "transfer_info",
            "area",
        ]
    )
    room_event_record(
        room_id=room.pk, kind="room.queued", data={"note": room.handoff_note, "area": room.area_id}
    )
    queue_changed_on_commit(room.area_id)
    transaction.on_commit(assignment_run)
    logger.info("room %s queued: %s", room.pk, note[:200])
    if outside_business_hours(timezone.now()):
        # Nobody answers now: the customer is told the hours, and either waits in the queue for
        # the morning or is asked to write again then (OUT_OF_HOURS).
        if settings.OUT_OF_HOURS == "close":
            room_close(
                room=room, reason="Fuera del horario de atención", closing_text=out_of_hours_text()
            )
        else:
            _system_message_send(room=room, text=out_of_hours_text())


def outside_business_hours(now: dt.datetime) -> bool:
    """BUSINESS_HOURS "07:00-22:00" in BUSINESS_TIMEZONE; empty means always open."""
    if not settings.BUSINESS_HOURS:
        return False
    opens, closes = (
        dt.time.fromisoformat(part.strip()) for part in settings.BUSINESS_HOURS.split("-")
    )
    local = now.astimezone(zoneinfo.ZoneInfo(settings.BUSINESS_TIMEZONE)).time()
    return not (opens <= local < closes)


def out_of_hours_text() -> str:
    """What a customer handed to agents outside BUSINESS_HOURS reads (OUT_OF_HOURS decides)."""
    opens, closes = (part.strip() for part in settings.BUSINESS_HOURS.split("-"))
    template = (
        settings.OUT_OF_HOURS_CLOSE_MESSAGE
        if settings.OUT_OF_HOURS == "close"
        else settings.OUT_OF_HOURS_QUEUE_MESSAGE
    )
    return template.format(opens=opens, closes=closes)


def room_close(
    *,
    room: Room | None = None,
    room_id: int | None = None,
    by: User | None = None,
    reason: str = "",
    closure_reason: ClosureReason | None = None,
    agent_only: bool = False,
    only_if: Callable[[Room], bool] | None = None,
    now: dt.datetime | None = None,
    closing_text: str | None = None,
    survey: bool = False,
) -> bool:
    """Close an open room: its cache entries go, its agent's capacity frees up, the queue is
    served, and the customer gets the closing text. False if it was closed already (or
    `only_if`, checked on the locked row, says no). With `agent_only`, `by` must be the agent the
    room is assigned to (ActionError otherwise). With `survey` (a close by a person or by
    inactivity), the post-close survey follows when it is due (rooms/conversation/survey.py):
    its first question carries the closing text."""
    room_id = room.pk if room is not None else room_id
    if room_id is None:
        raise TypeError("room_close needs a room or a room_id")
    reason = reason or (closure_reason.title if closure_reason else "")
    with transaction.atomic():
        locked = (
            Room.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(pk=room_id)
            .first()
        )
        if locked is None:
            raise ActionError("not_found", _("This conversation no longer exists."))
        if agent_only and (
            by is None or locked.status != Room.Status.ASSIGNED or locked.agent_id != by.pk
        ):
            raise ActionError("not_your_room", _("This conversation is not assigned to you."))
        if locked.status == Room.Status.CLOSED or (only_if is not None and not only_if(locked)):
            return False
        if closure_reason is not None and closure_reason.area_id not in (
            None,
            room_area_id(locked.area_id),
        ):
            raise ActionError(
                "unknown_reason", _("That closure reason belongs to another area: choose one.")
            )
        was_queued = locked.status == Room.Status.QUEUED
        locked.status = Room.Status.CLOSED
        closed_at = now or timezone.now()
        locked.closed_at = closed_at
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
        text = settings.ROOM_CLOSED_MESSAGE if closing_text is None else closing_text
        surveyed = (
            survey
            and survey_due(locked, now=closed_at)
            and survey_start_locked(room=locked, now=closed_at, opening=text)
        )
        if text and not surveyed:
            _system_message_send(room=locked, text=text)
        if was_queued:
            queue_changed_on_commit(locked.area_id)
        transaction.on_commit(assignment_run)
    logger.info("room %s closed (%s)", room_id, reason or "no reason given")
    return True


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
    message_deliver_on_commit(message, room)
    return message
