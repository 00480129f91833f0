"""A small desk's two days, made by hand so that every figure of the reports has one exact value
(tests/rooms/reports/test_figures.py works each one out). Times are Bogotá's (UTC-5, the
default BUSINESS_TIMEZONE).

Monday 2 November 2026
  R1 10:00  the bot alone; closed for inactivity 10:10; its survey (bot rooms may have one) got a 2
  R2 11:00  handed off 11:02 (General), auto-assigned to Ana 11:03 (waited 60 s), Ana writes
            11:03:30 (30 s), closes 11:13 "Resuelto" (handled 600 s); survey 10 / yes / 5
  R3 12:00  handed off 12:01 (General), Ana takes it 12:04 (180 s), writes 12:05 (60 s),
            transfers it to Beto 12:10, Beto writes 12:11, closes 12:21 "Resuelto" (1,020 s from
            the first assignment); survey 9 / no / 2
Tuesday 3 November 2026
  R4 09:00  handed off 09:01 (Nivel 2), closed in the queue 09:31 "Fuera del horario de atención"
  R5 10:00  handed off 10:00:30 (Nivel 2), Beto takes it 10:02:30 (120 s), writes 10:03:30 (60 s),
            hands it back to the bot 10:10, closed for inactivity 10:20 (1,050 s); survey unanswered
  R6 23:30  with the bot still (04:30 UTC on Wednesday: Tuesday's where the bank works)
Outside: R0 Sunday 1 November 23:30 (Monday 04:30 UTC), a closed bot room.

Presence: Ana Monday 08:00-12:00 available, 12:00-12:30 not; Beto Tuesday 08:00-10:00 available;
Ana Sunday 20:00-21:00 (outside).
"""

import datetime as dt
import zoneinfo
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth.models import User

from rooms.areas import area_default
from rooms.models import Area, Message, Room, RoomEvent, Survey
from tests.factories import AgentFactory, CustomerFactory
from users.models import AgentPresence

BOGOTA = zoneinfo.ZoneInfo("America/Bogota")
MONDAY, TUESDAY = dt.date(2026, 11, 2), dt.date(2026, 11, 3)


def at(day: dt.date, clock: str) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.fromisoformat(clock), tzinfo=BOGOTA)


@dataclass
class Desk:
    general: Area
    level_2: Area
    ana: User
    beto: User
    rooms: dict[str, Room]


class Conversation:
    """One room as chatbridge leaves it, its events numbered in order, with the times given: as
    its services do, the room keeps the instant of its first hand-off, first assignment and
    first agent message (tests/rooms/reports/test_first_instants.py follows the services)."""

    def __init__(self, opened: dt.datetime, **room: Any) -> None:
        self.room = Room.objects.create(customer=CustomerFactory(), **room)
        Room.objects.filter(pk=self.room.pk).update(opened_at=opened, last_activity_at=opened)
        self.seq = 0

    def event(self, kind: str, when: dt.datetime, **data: Any) -> "Conversation":
        self.seq += 1
        event = RoomEvent.objects.create(room=self.room, seq=self.seq, kind=kind, data=data)
        RoomEvent.objects.filter(pk=event.pk).update(created_at=when)
        Room.objects.filter(pk=self.room.pk).update(event_seq=self.seq)
        first = {"room.queued": "first_queued_at", "room.assigned": "first_assigned_at"}
        if kind in first:
            self._first(first[kind], when)
        return self

    def _first(self, field: str, when: dt.datetime) -> None:
        Room.objects.filter(pk=self.room.pk, **{f"{field}__isnull": True}).update(**{field: when})

    def message(self, author: str, when: dt.datetime, agent: User | None = None) -> "Conversation":
        direction = "in" if author == "customer" else "out"
        message = Message.objects.create(
            room=self.room, direction=direction, author=author, agent=agent, text="…"
        )
        Message.objects.filter(pk=message.pk).update(created_at=when)
        if author == "agent":
            self._first("first_answered_at", when)
        return self

    def survey(self, when: dt.datetime, status: str, **answers: Any) -> "Conversation":
        survey = Survey.objects.create(
            room=self.room, customer=self.room.customer, status=status, asked_at=when, **answers
        )
        Survey.objects.filter(pk=survey.pk).update(started_at=when)
        return self


def stretch(user: User, start: dt.datetime, end: dt.datetime, *, available: bool = True) -> None:
    AgentPresence.objects.create(
        user=user, available=available, started_at=start, seen_at=end, ended_at=end
    )


@pytest.fixture
def desk(settings) -> Desk:
    settings.BUSINESS_TIMEZONE = "America/Bogota"
    general = area_default()
    level_2 = Area.objects.create(name="Nivel 2", code="nivel-2", position=1)
    ana = AgentFactory(username="ana", first_name="Ana", last_name="Gómez")
    beto = AgentFactory(username="beto", first_name="Beto", last_name="Ruiz")
    general.agents.add(ana)
    level_2.agents.add(beto)
    inactivity, resolved = "Inactividad del cliente", "Resuelto"
    out_of_hours = "Fuera del horario de atención"

    rooms = {}
    sunday = MONDAY - dt.timedelta(days=1)
    rooms["R0"] = Conversation(
        at(sunday, "23:30"),
        status="closed",
        closed_at=at(sunday, "23:40"),
        closed_reason=inactivity,
    ).event("room.closed", at(sunday, "23:40"), reason=inactivity, by=None)
    rooms["R1"] = (
        Conversation(
            at(MONDAY, "10:00"),
            status="closed",
            closed_at=at(MONDAY, "10:10"),
            closed_reason=inactivity,
        )
        .message("customer", at(MONDAY, "10:00"))
        .message("bot", at(MONDAY, "10:00:02"))
        .event("room.closed", at(MONDAY, "10:10"), reason=inactivity, by=None)
        .survey(at(MONDAY, "10:10"), "ended", nps=2)
    )
    rooms["R2"] = (
        Conversation(
            at(MONDAY, "11:00"),
            status="closed",
            agent=ana,
            area=general,
            queued_at=at(MONDAY, "11:02"),
            assigned_at=at(MONDAY, "11:03"),
            closed_at=at(MONDAY, "11:13"),
            closed_by=ana,
            closed_reason=resolved,
        )
        .message("customer", at(MONDAY, "11:00"))
        .event("room.queued", at(MONDAY, "11:02"), area=general.pk, note="")
        .event("room.assigned", at(MONDAY, "11:03"), agent=ana.pk, previous_agent=None, how="auto")
        .message("agent", at(MONDAY, "11:03:30"), ana)
        .message("agent", at(MONDAY, "11:06"), ana)
        .event("room.closed", at(MONDAY, "11:13"), reason=resolved, by=ana.pk)
        .survey(at(MONDAY, "11:13"), "completed", nps=10, resolved=True, satisfaction=5)
    )
    rooms["R3"] = (
        Conversation(
            at(MONDAY, "12:00"),
            status="closed",
            agent=beto,
            area=general,
            queued_at=at(MONDAY, "12:01"),
            assigned_at=at(MONDAY, "12:10"),
            closed_at=at(MONDAY, "12:21"),
            closed_by=beto,
            closed_reason=resolved,
        )
        .event("room.queued", at(MONDAY, "12:01"), area=general.pk, note="")
        .event("room.assigned", at(MONDAY, "12:04"), agent=ana.pk, previous_agent=None, how="taken")
        .message("agent", at(MONDAY, "12:05"), ana)
        .event(
            "room.assigned",
            at(MONDAY, "12:10"),
            agent=beto.pk,
            previous_agent=ana.pk,
            how="transferred",
        )
        .message("agent", at(MONDAY, "12:11"), beto)
        .event("room.closed", at(MONDAY, "12:21"), reason=resolved, by=beto.pk)
        .survey(at(MONDAY, "12:21"), "completed", nps=9, resolved=False, satisfaction=2)
    )
    rooms["R4"] = (
        Conversation(
            at(TUESDAY, "09:00"),
            status="closed",
            area=level_2,
            queued_at=at(TUESDAY, "09:01"),
            closed_at=at(TUESDAY, "09:31"),
            closed_reason=out_of_hours,
        )
        .event("room.queued", at(TUESDAY, "09:01"), area=level_2.pk, note="")
        .event("room.closed", at(TUESDAY, "09:31"), reason=out_of_hours, by=None)
    )
    rooms["R5"] = (
        Conversation(
            at(TUESDAY, "10:00"),
            status="closed",
            area=level_2,
            queued_at=at(TUESDAY, "10:00:30"),
            assigned_at=at(TUESDAY, "10:02:30"),
            closed_at=at(TUESDAY, "10:20"),
            closed_reason=inactivity,
        )
        .event("room.queued", at(TUESDAY, "10:00:30"), area=level_2.pk, note="")
        .event(
            "room.assigned",
            at(TUESDAY, "10:02:30"),
            agent=beto.pk,
            previous_agent=None,
            how="taken",
        )
        .message("agent", at(TUESDAY, "10:03:30"), beto)
        .event("room.returned_to_bot", at(TUESDAY, "10:10"), agent=beto.pk)
        .event("room.closed", at(TUESDAY, "10:20"), reason=inactivity, by=None)
        .survey(at(TUESDAY, "10:20"), "expired")
    )
    rooms["R6"] = Conversation(at(TUESDAY, "23:30"), status="bot").message(
        "customer", at(TUESDAY, "23:30")
    )
    stretch(ana, at(MONDAY, "08:00"), at(MONDAY, "12:00"))
    stretch(ana, at(MONDAY, "12:00"), at(MONDAY, "12:30"), available=False)
    stretch(beto, at(TUESDAY, "08:00"), at(TUESDAY, "10:00"))
    stretch(ana, at(sunday, "20:00"), at(sunday, "21:00"))
    return Desk(
        general=general,
        level_2=level_2,
        ana=ana,
        beto=beto,
        rooms={name: conversation.room for name, conversation in rooms.items()},
    )
