"""The reports' figures that are counters and histograms, to /metrics as they happen: each one
observed from the room event that records its moment, once that event commits, with one small
query at most (README, *Reports* and *Observability*).

Every hand-off, assignment, agent's message and close writes its room event through
rooms.events.room_event_record (the ORM: post_save fires); the webhook's one-statement path
writes only customers' messages, which nothing here counts. An observation that fails (the
database gone after the commit) is logged and lost: a metric never fails what it measures.
"""

import datetime as dt
from collections.abc import Callable
from functools import partial
from typing import Any

from django.db import transaction
from django.db.models import Exists, OuterRef, Subquery
from django.db.models.signals import post_save
from django.dispatch import receiver

from chatbridge.metrics import (
    ASSIGNMENTS,
    CLOSURE_REASONS,
    FIRST_RESPONSE,
    HANDLING,
    HANDOFFS,
    QUEUE_WAIT,
    ROOMS_CLOSED,
)
from rooms.areas import area_default
from rooms.models import Area, Message, Room, RoomEvent

QUEUED, ASSIGNED = "room.queued", "room.assigned"
# The area label of the bot's own rooms (never handed off).
NO_AREA = "none"


def _events(room: Any, kind: str) -> Any:
    return RoomEvent.objects.filter(room=room, kind=kind).order_by("seq")


def _area(code: str | None, handed_off: bool) -> str:
    """A room's area label: its area's code; a room handed off before areas, the default's."""
    if code:
        return code
    return area_default().code if handed_off else NO_AREA


def handoff_observe(event: RoomEvent) -> None:
    area_id = event.data.get("area") if isinstance(event.data, dict) else None
    code = None
    if isinstance(area_id, int):
        code = Area.objects.filter(pk=area_id).values_list("code", flat=True).first()
    HANDOFFS.labels(area=_area(code, True)).inc()


def assignment_observe(event: RoomEvent) -> None:
    """Every assignment is counted; the room's first one also ends its wait in the queue."""
    how = event.data.get("how", "") if isinstance(event.data, dict) else ""
    ASSIGNMENTS.labels(how=how).inc()
    found = (
        Room.objects.filter(pk=event.room_id)
        .annotate(
            first_queued=Subquery(_events(OuterRef("pk"), QUEUED).values("created_at")[:1]),
            assigned_before=Exists(_events(OuterRef("pk"), ASSIGNED).filter(seq__lt=event.seq)),
        )
        .values_list("area__code", "first_queued", "assigned_before")
        .first()
    )
    if found is None:
        return
    code, first_queued, assigned_before = found
    if first_queued is not None and not assigned_before:
        wait = (event.created_at - first_queued).total_seconds()
        QUEUE_WAIT.labels(area=_area(code, True)).observe(wait)


def agent_message_observe(event: RoomEvent) -> None:
    """A room's first agent message ends its first response time."""
    message_id = event.data.get("id") if isinstance(event.data, dict) else None
    earlier = Message.objects.filter(
        room=OuterRef("pk"), author=Message.Author.AGENT, id__lt=message_id
    )
    found = (
        Room.objects.filter(pk=event.room_id)
        .annotate(
            first_assigned=Subquery(_events(OuterRef("pk"), ASSIGNED).values("created_at")[:1]),
            answered_before=Exists(earlier),
        )
        .values_list("area__code", "first_assigned", "answered_before")
        .first()
    )
    if found is None:
        return
    code, first_assigned, answered_before = found
    if first_assigned is not None and not answered_before:
        seconds = (event.created_at - first_assigned).total_seconds()
        FIRST_RESPONSE.labels(area=_area(code, True)).observe(seconds)


def close_observe(event: RoomEvent) -> None:
    data = event.data if isinstance(event.data, dict) else {}
    CLOSURE_REASONS.labels(reason=str(data.get("reason") or "")).inc()
    found = (
        Room.objects.filter(pk=event.room_id)
        .annotate(
            first_assigned=Subquery(_events(OuterRef("pk"), ASSIGNED).values("created_at")[:1])
        )
        .values_list("area__code", "queued_at", "first_assigned")
        .first()
    )
    if found is None:
        return
    code, queued_at, first_assigned = found
    area = _area(code, queued_at is not None)
    ROOMS_CLOSED.labels(
        area=area,
        served_by="bot" if queued_at is None else "agents",
        closed_by="person" if data.get("by") else "automatic",
    ).inc()
    if isinstance(first_assigned, dt.datetime):
        HANDLING.labels(area=area).observe((event.created_at - first_assigned).total_seconds())


def _is_agents_message(event: RoomEvent) -> bool:
    return isinstance(event.data, dict) and event.data.get("author") == Message.Author.AGENT


_OBSERVERS: dict[str, tuple[Callable[[RoomEvent], bool], Callable[[RoomEvent], None]]] = {
    QUEUED: (lambda event: True, handoff_observe),
    ASSIGNED: (lambda event: True, assignment_observe),
    "message.new": (_is_agents_message, agent_message_observe),
    "room.closed": (lambda event: True, close_observe),
}


@receiver(post_save, sender=RoomEvent)
def room_event_observe(sender: type, instance: RoomEvent, created: bool, **kwargs: Any) -> None:
    observer = _OBSERVERS.get(instance.kind)
    if created and observer is not None and observer[0](instance):
        transaction.on_commit(partial(observer[1], instance), robust=True)
