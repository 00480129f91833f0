"""Taking up what a dead process left: unanswered messages and unsent messages.

The database task backend keeps each turn's task row, but a worker killed mid-turn leaves it
"running" forever, and the immediate backend has no row at all. Both are covered the same way:
the message itself records whether it was answered (`handled_at`), and `manage.py turns_resume`
starts a new turn for any message left unanswered for longer than TURN_RESUME_AFTER_SECONDS.
A turn that is in fact still running holds the room's lock; the new one waits for it and then
finds nothing left to do, so nothing is answered twice.

A send is taken up only once nobody holds it: rooms/delivery/services.py (outbound_claim) says
when, and why a send whose outcome is unknown waits for WhatsApp's status before it is repeated.
"""

import datetime as dt
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from rooms.bot.tasks import room_turn, survey_turn
from rooms.conversation.services import room_queue
from rooms.delivery.services import (
    TurnTarget,
    outbound_deliver,
    outbound_take,
    sends_takeable,
    turn_target,
)
from rooms.models import Message, Room
from users.selectors import CustomerRef

logger = logging.getLogger("chatbridge.recovery")


@dataclass(frozen=True)
class ResumeResult:
    turns: int
    resent: int


def turns_resume(*, older_than_seconds: float) -> ResumeResult:
    cutoff = timezone.now() - dt.timedelta(seconds=older_than_seconds)
    latest: dict[int, Message] = {}
    unanswered = Message.objects.filter(
        direction=Message.Direction.INBOUND, handled_at__isnull=True, created_at__lt=cutoff
    ).select_related("room__customer")
    for message in unanswered.order_by("id"):
        latest[message.room_id] = message
    resumed = 0
    for room_id, message in latest.items():
        Message.objects.filter(pk=message.pk).update(resumes=F("resumes") + 1)
        if message.resumes >= settings.TURN_RESUME_MAX:
            # Every turn of it died (it killed its worker, or Watson's answer to it did): a
            # person answers it instead of the bot trying for ever.
            logger.error(
                "room %s: message %s resumed %d times, to the agents",
                room_id,
                message.pk,
                message.resumes,
            )
            room_queue(room_id=room_id, note="El asistente no pudo responder este mensaje.")
            Message.objects.filter(
                room_id=room_id, direction=Message.Direction.INBOUND, handled_at__isnull=True
            ).update(handled_at=timezone.now())
            continue
        logger.warning("resuming the turn of room %s (message %s)", room_id, message.pk)
        target = turn_target(CustomerRef.of(message.room.customer), message.room.line)
        # A closed room's unanswered message is its survey's answer (rooms/bot/survey.py).
        turn = survey_turn if message.room.status == Room.Status.CLOSED else room_turn
        turn.enqueue(room_id=room_id, message_id=message.pk, target=target)
        resumed += 1
    return ResumeResult(turns=resumed, resent=_unsent_resend(cutoff=cutoff))


def _unsent_resend(*, cutoff: dt.datetime) -> int:
    """Sends a dead process left: a message stored but never sent (pending since before
    `cutoff`: a send task that never ran), or one whose sender's lease ended with no status from
    WhatsApp within the grace (outbound_claim decides, under the message's lock)."""
    unsent = Message.objects.filter(sends_takeable(pending_before=cutoff)).select_related(
        "room__customer"
    )
    count = 0
    for candidate in unsent.order_by("id"):
        message = outbound_take(
            message_id=candidate.pk,
            provider=candidate.room.customer.provider,
            line=candidate.room.line,
        )
        if message is None:
            continue  # someone else holds it, it settled meanwhile, or it was given up
        logger.warning(
            "sending message %s left unsent (send %d)", message.pk, message.send_attempts
        )
        room = candidate.room
        target = TurnTarget(**turn_target(CustomerRef.of(room.customer), room.line))
        in_agents_room = room.status in Room.WITH_AGENTS
        outbound_deliver(message, target, in_agents_room=in_agents_room)
        count += 1
    return count
