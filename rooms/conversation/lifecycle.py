"""The periodic closing of rooms: the customer's inactivity and business hours.

Safe in several processes at once: each room is closed by `room_close`, which locks its row and
checks the condition again on the locked row, so a room is closed once, and never one whose
customer wrote in the meantime.
"""

import datetime as dt
import logging
import zoneinfo

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from rooms.conversation.services import room_close
from rooms.models import Room

logger = logging.getLogger("chatbridge.lifecycle")

INACTIVITY_REASON = "Inactividad del cliente"
SCHEDULE_REASON = "Fuera del horario de atención"


def _waiting_for_customer_since(cutoff: dt.datetime) -> Q:
    """Rooms where the last word was ours (bot or agent) and the customer has been silent since
    `cutoff`. A customer waiting for an answer, or in the queue, is not inactive."""
    return Q(status__in=[Room.Status.BOT, Room.Status.ASSIGNED], last_activity_at__lt=cutoff) & (
        Q(last_customer_at__isnull=True) | Q(last_activity_at__gt=F("last_customer_at"))
    )


def rooms_close_inactive(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=settings.ROOM_INACTIVITY_MINUTES)
    condition = _waiting_for_customer_since(cutoff)

    def still_inactive(room: Room) -> bool:
        return Room.objects.filter(condition, pk=room.pk).exists()

    closed = 0
    for room_id in Room.objects.filter(condition).values_list("id", flat=True)[:500]:
        closed += room_close(
            room_id=room_id, reason=INACTIVITY_REASON, only_if=still_inactive, now=now
        )
    if closed:
        logger.info("closed %d inactive room(s)", closed)
    return closed


def outside_business_hours(now: dt.datetime) -> bool:
    """BUSINESS_HOURS "07:00-22:00" in BUSINESS_TIMEZONE; empty means always open."""
    if not settings.BUSINESS_HOURS:
        return False
    opens, closes = (
        dt.time.fromisoformat(part.strip()) for part in settings.BUSINESS_HOURS.split("-")
    )
    local = now.astimezone(zoneinfo.ZoneInfo(settings.BUSINESS_TIMEZONE)).time()
    return not (opens <= local < closes)


def rooms_close_out_of_hours(*, now: dt.datetime | None = None) -> int:
    now = now or timezone.now()
    if not outside_business_hours(now):
        return 0
    closed = 0
    open_rooms = Room.objects.exclude(status=Room.Status.CLOSED).values_list("id", flat=True)
    for room_id in open_rooms[:500]:
        closed += room_close(room_id=room_id, reason=SCHEDULE_REASON, now=now)
    if closed:
        logger.info("closed %d room(s) outside business hours", closed)
    return closed
