"""The room keeps the instant of its first hand-off, first assignment and first agent message
(what the reports measure the queue wait, the first response and the handling from), written
by the services that record those events and never moved after: through a release, a transfer to
another agent and to another area, a return to the bot and a second hand-off. And migration
rooms.0018 gives the rooms handed off before it the same instants, from their events."""

import importlib
import io
import types

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db.models import Min

from rooms.areas import area_default
from rooms.conversation.services import room_queue
from rooms.desk.assignment import (
    room_release,
    room_return_to_bot,
    room_take,
    room_transfer,
    room_transfer_to_area,
)
from rooms.desk.services import agent_message_send
from rooms.models import Area, Message, Room, RoomEvent
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def first_event(room: Room, kind: str):
    return RoomEvent.objects.filter(room=room, kind=kind).aggregate(at=Min("created_at"))["at"]


def first_agent_message(room: Room):
    messages = Message.objects.filter(room=room, author=Message.Author.AGENT)
    return messages.aggregate(at=Min("created_at"))["at"]


def a_long_conversation(room: Room) -> dict[str, object]:
    """Every move that assigns, queues or answers again, after the first of each; the first
    hand-off's, assignment's and agent message's instants."""
    level_2 = Area.objects.create(code="nivel-2", name="Nivel 2")
    ana, beto = AgentFactory(username="ana"), AgentFactory(username="beto")
    carla = AgentFactory(username="carla")
    level_2.agents.add(carla)
    assert room_queue(room_id=room.pk, note="quiere un asesor")
    queued_at = Room.objects.get(pk=room.pk).queued_at
    assigned_at = room_take(room_id=room.pk, agent=ana).assigned_at
    answered_at = agent_message_send(room_id=room.pk, agent=ana, text="Hola, soy Ana.").created_at
    agent_message_send(room_id=room.pk, agent=ana, text="¿En qué le ayudo?")
    room_release(room_id=room.pk, agent=ana)
    room_take(room_id=room.pk, agent=beto)
    agent_message_send(room_id=room.pk, agent=beto, text="Hola, soy Beto.")
    room_transfer(room_id=room.pk, agent=beto, to_agent_id=ana.pk)
    room_transfer_to_area(room_id=room.pk, agent=ana, area_id=level_2.pk, note="tarjeta")
    room_take(room_id=room.pk, agent=carla)
    agent_message_send(room_id=room.pk, agent=carla, text="Hola, soy Carla.")
    room_return_to_bot(room_id=room.pk, agent=carla)
    assert room_queue(room_id=room.pk, note="otra vez")  # to the default area again
    room_take(room_id=room.pk, agent=beto)
    agent_message_send(room_id=room.pk, agent=beto, text="Sigo yo.")
    return {
        "first_queued_at": queued_at,
        "first_assigned_at": assigned_at,
        "first_answered_at": answered_at,
    }


def test_the_room_keeps_the_first_of_each(fake_vendors, no_auto_assign):
    area_default()
    room = Room.objects.create(customer=CustomerFactory())
    first = a_long_conversation(room)

    room.refresh_from_db()
    assert RoomEvent.objects.filter(room=room, kind="room.queued").count() == 2
    assert RoomEvent.objects.filter(room=room, kind="room.assigned").count() == 5
    assert first["first_answered_at"] == first_agent_message(room)
    assert {name: getattr(room, name) for name in first} == first
    # The room's own queued_at and assigned_at moved on: the reports cannot read those.
    assert room.queued_at > room.first_queued_at
    assert room.assigned_at > room.first_assigned_at


def test_a_room_the_bot_kept_has_none(fake_vendors):
    room = Room.objects.create(customer=CustomerFactory())
    room.refresh_from_db()
    assert (room.first_queued_at, room.first_assigned_at, room.first_answered_at) == (
        None,
        None,
        None,
    )


def test_the_migration_gives_the_rooms_before_it_their_first_instants(fake_vendors, no_auto_assign):
    area_default()
    talked = Room.objects.create(customer=CustomerFactory())
    a_long_conversation(talked)
    waiting = Room.objects.create(customer=CustomerFactory())
    room_queue(room_id=waiting.pk, note="espera")
    bot = Room.objects.create(customer=CustomerFactory())
    # As the rooms were before migration rooms.0018.
    Room.objects.update(first_queued_at=None, first_assigned_at=None, first_answered_at=None)
    migration = importlib.import_module("rooms.migrations.0018_room_first_instants")

    migration.first_instants_fill(apps, types.SimpleNamespace(connection=connection))

    talked.refresh_from_db()
    assert talked.first_queued_at == first_event(talked, "room.queued")
    assert talked.first_assigned_at == first_event(talked, "room.assigned")
    assert talked.first_answered_at == first_agent_message(talked)
    waiting.refresh_from_db()
    assert waiting.first_queued_at == first_event(waiting, "room.queued") is not None
    assert (waiting.first_assigned_at, waiting.first_answered_at) == (None, None)
    bot.refresh_from_db()
    assert bot.first_queued_at is None


def test_after_the_upgrade_the_command_mends_what_older_processes_left(
    fake_vendors, no_auto_assign
):
    """An older process handed off and assigned without them; a newer one queued the room again
    (its first_queued_at the later hand-off's): the command gives the events' first instants."""
    area_default()
    room = Room.objects.create(customer=CustomerFactory())
    a_long_conversation(room)
    later = RoomEvent.objects.filter(room=room, kind="room.queued").order_by("-seq")[0].created_at
    Room.objects.filter(pk=room.pk).update(first_queued_at=later, first_assigned_at=None)
    out = io.StringIO()

    call_command("room_first_instants_fill", stdout=out)

    room.refresh_from_db()
    assert room.first_queued_at == first_event(room, "room.queued") < later
    assert room.first_assigned_at == first_event(room, "room.assigned")
    assert room.first_answered_at == first_agent_message(room)
    assert out.getvalue() == "1 handed-off rooms read; their first instants are their events'\n"
