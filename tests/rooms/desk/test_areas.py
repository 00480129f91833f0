"""Areas (teams) and tiers: a hand-off enters the area Watson names (or the default one), an
agent receives rooms only from their areas, least loaded first and FIFO within the area, a room
moves between areas with a note and keeps its place, and closure reasons and canned replies are
global or an area's. The claim races across two processes are in tests/test_agents_processes.py."""

import datetime as dt

import pytest
from django.utils import timezone

from chatbridge.fakes.watson import AGENT_AVAILABLE, AGENT_UNAVAILABLE
from rooms.areas import agent_area_ids, area_default, area_for_handoff
from rooms.conversation.services import room_close
from rooms.desk.assignment import assignment_run, room_take, room_transfer_to_area
from rooms.errors import ActionError
from rooms.events import canned_replies_data, queue_data
from rooms.models import Area, CannedReply, ClosureReason, Room, RoomEvent
from tests.factories import AgentFactory, CustomerFactory
from tests.payloads import text_from
from users.models import AgentProfile

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def level_2():
    return Area.objects.create(name="Level 2", code="level-2")


def queued(area=None, minutes_ago=0, **room):
    return Room.objects.create(
        customer=CustomerFactory(),
        status=Room.Status.QUEUED,
        area=area,
        queued_at=timezone.now() - dt.timedelta(minutes=minutes_ago),
        **room,
    )


def online(*agents):
    AgentProfile.objects.filter(user__in=agents).update(last_seen_at=timezone.now())


def test_a_hand_off_enters_the_area_watson_names_or_the_default_one(level_2):
    assert area_for_handoff({"target": {"chatbridge": {"area": "level-2"}}}) == level_2
    assert area_for_handoff({"target": {"chatbridge": {"area": "LEVEL 2"}}}) == level_2  # name
    general = area_default()
    assert area_for_handoff({"target": {"chatbridge": {"area": "nowhere"}}}) == general
    assert area_for_handoff({"target": {"zendesk": {"department": "Payments"}}}) == general
    assert area_for_handoff(None) == general


def test_watsons_hand_off_queues_the_room_in_its_area(level_2, post_webhook, settings):
    settings.AUTO_ASSIGN = False
    post_webhook(text_from("573004440001", "necesito un asesor de nivel 2 por favor"))
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED and room.area == level_2
    queued_event = RoomEvent.objects.get(room=room, kind="room.queued")
    assert queued_event.data["area"] == level_2.pk
    assert [r["id"] for r in queue_data(area_ids=[level_2.pk])] == [room.pk]
    assert queue_data(area_ids=[area_default().pk]) == []


def test_an_agent_takes_only_from_their_areas(level_2, settings):
    settings.AUTO_ASSIGN = False
    first_level, specialist = AgentFactory(), AgentFactory()
    level_2.agents.add(specialist)
    room = queued(level_2)

    with pytest.raises(ActionError) as refused:
        room_take(room_id=room.pk, agent=first_level)
    assert refused.value.code == "not_your_area"
    assert Room.objects.get(pk=room.pk).status == Room.Status.QUEUED

    room_take(room_id=room.pk, agent=specialist)
    assert Room.objects.get(pk=room.pk).agent == specialist
    # An agent in no area works the default one; one in an area, only theirs.
    assert agent_area_ids(first_level.pk) == [area_default().pk]
    assert agent_area_ids(specialist.pk) == [level_2.pk]


def test_a_level_2_room_never_goes_to_a_level_1_only_agent(level_2):
    first_level = AgentFactory(capacity=5)
    specialist = AgentFactory(capacity=5)
    level_2.agents.add(specialist)
    Room.objects.create(customer=CustomerFactory(), status=Room.Status.ASSIGNED, agent=specialist)
    online(first_level, specialist)
    hard = queued(level_2, minutes_ago=10)  # waited longest, but level 2's
    easy = queued(None, minutes_ago=5)  # from before areas: the default area's

    assert assignment_run() == 2
    # The least-loaded agent (level 1, no rooms) got the oldest room of *their* area.
    assert Room.objects.get(pk=easy.pk).agent == first_level
    assert Room.objects.get(pk=hard.pk).agent == specialist


def test_fifo_within_the_area(level_2):
    specialist = AgentFactory(capacity=1)
    level_2.agents.add(specialist)
    online(specialist)
    later = queued(level_2, minutes_ago=1)
    earlier = queued(level_2, minutes_ago=9)
    assert assignment_run() == 1
    assert Room.objects.get(pk=earlier.pk).agent == specialist
    assert Room.objects.get(pk=later.pk).status == Room.Status.QUEUED


def test_a_room_moves_to_another_area_with_a_note_and_keeps_its_place(level_2, settings):
    settings.AUTO_ASSIGN = False
    agent = AgentFactory()
    room = queued(None, minutes_ago=20)
    room_take(room_id=room.pk, agent=agent)
    handed_off_at = Room.objects.get(pk=room.pk).queued_at

    room_transfer_to_area(room_id=room.pk, agent=agent, area_id=level_2.pk, note="Caso de fraude")

    moved = Room.objects.get(pk=room.pk)
    assert (moved.status, moved.area, moved.agent) == (Room.Status.QUEUED, level_2, None)
    assert moved.queued_at == handed_off_at  # ahead of whoever was handed off after them
    assert moved.handoff_note == f"{agent.first_name}: Caso de fraude"  # what level 2 reads
    event = RoomEvent.objects.get(room=room, kind="room.area_transferred")
    assert event.data == {
        "area": level_2.pk,
        "previous_area": area_default().pk,
        "agent": agent.pk,
        "note": "Caso de fraude",
    }
    with pytest.raises(ActionError) as refused:  # no longer theirs
        room_transfer_to_area(room_id=room.pk, agent=agent, area_id=area_default().pk)
    assert refused.value.code == "not_your_room"


def test_a_transfer_to_the_area_it_is_in_or_to_no_area_is_refused(level_2, settings):
    settings.AUTO_ASSIGN = False
    agent = AgentFactory()
    room = queued(None)
    room_take(room_id=room.pk, agent=agent)
    for area_id, code in ((area_default().pk, "invalid"), (999999, "not_found")):
        with pytest.raises(ActionError) as refused:
            room_transfer_to_area(room_id=room.pk, agent=agent, area_id=area_id)
        assert refused.value.code == code
    assert Room.objects.get(pk=room.pk).agent == agent


def test_the_hand_off_text_asks_whether_someone_in_that_area_is_free(
    level_2, post_webhook, whatsapp, settings
):
    settings.AUTO_ASSIGN = False
    online(AgentFactory())  # level 1 only
    post_webhook(text_from("573004440002", "necesito un asesor de nivel 2 por favor"))
    assert whatsapp.sent[-1]["text"] == AGENT_UNAVAILABLE
    specialist = AgentFactory()
    level_2.agents.add(specialist)
    online(specialist)
    post_webhook(text_from("573004440003", "necesito un asesor de nivel 2 por favor"))
    assert whatsapp.sent[-1]["text"] == AGENT_AVAILABLE


def test_closure_reasons_and_canned_replies_are_global_or_an_areas(level_2, settings):
    settings.AUTO_ASSIGN = False
    level_2_only = ClosureReason.objects.create(title="Escalado a fraude", area=level_2)
    CannedReply.objects.create(title="Fraude", shortcut="fraude", text="...", area=level_2)
    CannedReply.objects.create(title="Saludo", shortcut="saludo", text="Hola")
    assert {(r["shortcut"], r["area"]) for r in canned_replies_data()} == {
        ("fraude", level_2.pk),
        ("saludo", None),
    }
    agent = AgentFactory()
    room = queued(None)
    room_take(room_id=room.pk, agent=agent)
    with pytest.raises(ActionError) as refused:
        room_close(room_id=room.pk, by=agent, closure_reason=level_2_only, agent_only=True)
    assert refused.value.code == "unknown_reason"
    assert Room.objects.get(pk=room.pk).status == Room.Status.ASSIGNED


def test_a_room_sent_to_an_area_does_not_bounce_back_to_its_sender(level_2, settings):
    settings.AUTO_ASSIGN = True
    both = AgentFactory(capacity=5)  # works level 1 (the default) and level 2
    level_2.agents.add(both)
    area_default().agents.add(both)
    online(both)
    room = queued(None)
    room_take(room_id=room.pk, agent=both)
    room_transfer_to_area(room_id=room.pk, agent=both, area_id=level_2.pk, note="para nivel 2")
    moved = Room.objects.get(pk=room.pk)
    assert (moved.status, moved.agent) == (Room.Status.QUEUED, None)  # waits for someone else


def test_the_default_area_is_never_lost(level_2):
    """Its mark cleared and its code changed: hand-offs still find an area, nothing fails."""
    general = area_default()
    Area.objects.filter(pk=general.pk).update(is_default=False, code="nivel-1")
    assert area_for_handoff(None) in (general, level_2)
    assert Area.objects.count() == 2  # none made behind the operators' back
