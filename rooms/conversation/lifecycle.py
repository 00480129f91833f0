"""The periodic closing of rooms: the customer's inactivity and business hours.

Safe in several processes at once: each room is closed by `room_close`, which locks its row and
checks the condition again on the locked row, so a room is closed once, and never one whose
customer wrote in the meantime.

Whose silence counts: in the bot's room, the customer's after the bot's (or anyone's) last word;
in an agent's room, only after that agent wrote. A customer promised a human (the bot's hand-off
text, the agent's silence so far) is waiting for us, not inactive; the closing texts (the system's)
and the hand-off texts (the bot's) are never an agent's word. Moving a room between people starts
the agent's clock again:
- transferred: only the new agent's messages count, from their assignment (`assigned_at`): the
  customer is waiting for them, whatever the previous agent said;
- released: a queued room is never closed for inactivity; taken again (by anyone), it counts from
  that assignment, as a transfer does;
- returned to the bot: the bot's rule, from our last word, whoever wrote it (the returning
  agent's goodbye, or the bot's earlier hand-off text if the agent said nothing).
"""

import datetime as dt
import logging

from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce
from django.utils import timezone

from rooms.conversation.services import (
    out_of_hours_text,
    outside_business_hours,
    room_close,
)
from rooms.models import Message, Room

logger = logging.getLogger("chatbridge.lifecycle")

INACTIVITY_REASON = "Inactividad del cliente"
SCHEDULE_REASON = "Fuera del horario de atención"


def _waiting_for_customer_since(cutoff: dt.datetime, *, now: dt.datetime) -> Q:
    """Rooms where the last word was ours and the customer has been silent since `cutoff`: the
    bot's after any word of ours, the agent's only after the agent wrote. A customer waiting for
    an answer, for an agent, or in the queue, is not inactive; nor is one an agent wrote to with
    a template (the window had closed: their answer may take hours) until TEMPLATE_REPLY_HOURS
    have passed."""
    silent = Q(last_activity_at__lt=cutoff)
    bot_spoke_last = Q(status=Room.Status.BOT) & (
        Q(last_customer_at__isnull=True) | Q(last_activity_at__gt=F("last_customer_at"))
    )
    # `last_activity_at` is never older than the agent's message, so `silent` dates it too.
    agent_spoke_last = Q(status=Room.Status.ASSIGNED) & Q(Exists(_agent_words_since_customer()))
    recent_template = _agent_words_since_customer().filter(
        type=Message.Type.TEMPLATE,
        created_at__gt=now - dt.timedelta(hours=settings.TEMPLATE_REPLY_HOURS),
    )
    agent_spoke_last &= ~Q(Exists(recent_template))
    # Queued rooms match neither: their customer is waiting for an agent.
    return silent & (bot_spoke_last | agent_spoke_last)


def _agent_words_since_customer() -> QuerySet[Message]:
    """The room's agent's messages since they were assigned and since the customer last wrote
    (a customer who never wrote: since the assignment). Looked up per room through its index."""
    return Message.objects.filter(
        room=OuterRef("pk"),
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.AGENT,
        agent=OuterRef("agent"),
        created_at__gte=OuterRef("assigned_at"),
        created_at__gt=Coalesce(OuterRef("last_customer_at"), OuterRef("assigned_at")),
    )


def rooms_close_inactive(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=settings.ROOM_INACTIVITY_MINUTES)
    condition = _waiting_for_customer_since(cutoff, now=now)

    def still_inactive(room: Room) -> bool:
        return Room.objects.filter(condition, pk=room.pk).exists()

    closed = 0
    for room_id in Room.objects.filter(condition).values_list("id", flat=True)[:500]:
        closed += room_close(
            room_id=room_id, reason=INACTIVITY_REASON, only_if=still_inactive, now=now, survey=True
        )
    if closed:
        logger.info("closed %d inactive room(s)", closed)
    return closed


def rooms_close_out_of_hours(*, now: dt.datetime | None = None) -> int:
    """Outside BUSINESS_HOURS the bot keeps answering and agents finish the conversations they
    have (inactivity still closes silent ones); with OUT_OF_HOURS=close the queue is emptied,
    each customer told when to write again. With OUT_OF_HOURS=queue it waits for the morning."""
    now = now or timezone.now()
    if not outside_business_hours(now) or settings.OUT_OF_HOURS != "close":
        return 0
    closed = 0
    queued = Room.objects.filter(status=Room.Status.QUEUED).values_list("id", flat=True)
    for room_id in queued[:500]:
        closed += room_close(
            room_id=room_id,
            reason=SCHEDULE_REASON,
            now=now,
            only_if=lambda room: room.status == Room.Status.QUEUED,
            closing_text=out_of_hours_text(),
        )
    if closed:
        logger.info("closed %d room(s) outside business hours", closed)
    return closed
