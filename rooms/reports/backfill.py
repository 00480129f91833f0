"""A room's first hand-off, first assignment and first agent message (Room.first_queued_at and
its kin) from its events and messages, for the rooms handed off before chatbridge kept them:
migration rooms.0018 runs it, and `manage.py room_first_instants_fill` runs it again once every
process runs the code that writes them (rooms an older process handed off, assigned or answered
during the upgrade). Where a room has the event, the event's instant wins (a room an older
process handed off, then a newer one queued again, had the later one); where it has none, the
room keeps what it has. A few thousand rooms per transaction, so that no long one holds the rows
the desk is working on. The models are passed in: a migration's are its historical ones.
"""

from typing import Any

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce

BATCH = 5000


def first_instants_fill(
    *, room: Any, event: Any, message: Any, using: str = "default", batch: int = BATCH
) -> int:
    """Fill the handed-off rooms' first instants; how many rooms were read."""

    def first(rows: Any) -> Subquery:
        earliest = rows.filter(room=OuterRef("pk")).order_by("created_at").values("created_at")
        return Subquery(earliest[:1])

    handed_off = room.objects.using(using).filter(queued_at__isnull=False)
    last, read = 0, 0
    while ids := list(
        handed_off.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:batch]
    ):
        with transaction.atomic(using=using):
            room.objects.using(using).filter(pk__in=ids).update(
                first_queued_at=Coalesce(
                    first(event.objects.filter(kind="room.queued")), "first_queued_at"
                ),
                first_assigned_at=Coalesce(
                    first(event.objects.filter(kind="room.assigned")), "first_assigned_at"
                ),
                first_answered_at=Coalesce(
                    first(message.objects.filter(author="agent")), "first_answered_at"
                ),
            )
        last, read = ids[-1], read + len(ids)
    return read
