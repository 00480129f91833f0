"""Taking up what a dead process left: unanswered messages and unsent replies.

The database task backend keeps each turn's task row, but a worker killed mid-turn leaves it
"running" forever, and the immediate backend has no row at all. Both are covered the same way:
the message itself records whether it was answered (`handled_at`), and `manage.py turns_resume`
starts a new turn for any message left unanswered for longer than TURN_RESUME_AFTER_SECONDS.
A turn that is in fact still running holds the room's lock; the new one waits for it and then
finds nothing left to do, so nothing is answered twice.
"""

import datetime as dt
import logging
from dataclasses import dataclass

from django.utils import timezone

from chatbridge.locks import ROOM_TURN, lock_for_session
from rooms.bot.tasks import room_turn
from rooms.delivery.services import TurnTarget, outbound_deliver, turn_target
from rooms.models import Message
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
    for room_id, message in latest.items():
        logger.warning("resuming the turn of room %s (message %s)", room_id, message.pk)
        target = turn_target(CustomerRef.of(message.room.customer))
        room_turn.enqueue(room_id=room_id, message_id=message.pk, target=target)
    return ResumeResult(turns=len(latest), resent=_unsent_resend(cutoff=cutoff))


def _unsent_resend(*, cutoff: dt.datetime) -> int:
    """Bot replies stored by a turn whose process died before sending them."""
    unsent = Message.objects.filter(
        direction=Message.Direction.OUTBOUND, status=Message.Status.PENDING, created_at__lt=cutoff
    ).select_related("room__customer")
    count = 0
    for message in unsent.order_by("id"):
        target = TurnTarget(**turn_target(CustomerRef.of(message.room.customer)))
        with lock_for_session(ROOM_TURN, message.room_id):
            message.refresh_from_db(fields=["status"])
            if message.status == Message.Status.PENDING:
                logger.warning("sending reply %s left unsent", message.pk)
                outbound_deliver(message, target)
                count += 1
    return count
