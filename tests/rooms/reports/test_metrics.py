"""The reports' counters and histograms on /metrics, observed as each moment commits: the
hand-off, the assignment (and the queue wait it ends), the first agent message, the close; and
the survey's, through survey_observe."""

import pytest
from prometheus_client import REGISTRY

from chatbridge.metrics import survey_observe
from rooms.areas import area_default
from rooms.conversation.services import room_close, room_queue
from rooms.desk.assignment import room_take, room_transfer
from rooms.desk.services import agent_message_send
from rooms.models import ClosureReason, Room
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_conversation_counts_as_it_goes(fake_vendors, no_auto_assign):
    area = area_default().code
    ana, beto = AgentFactory(username="ana"), AgentFactory(username="beto")
    reason = ClosureReason.objects.create(title="Resuelto en línea")
    room = Room.objects.create(customer=CustomerFactory())
    closed = {"area": area, "served_by": "agents", "closed_by": "person"}
    expected = [
        ("chatbridge_handoffs_total", {"area": area}, 1),
        ("chatbridge_assignments_total", {"how": "taken"}, 1),
        ("chatbridge_assignments_total", {"how": "transferred"}, 1),
        ("chatbridge_queue_wait_seconds_count", {"area": area}, 1),  # the first assignment's
        ("chatbridge_first_response_seconds_count", {"area": area}, 1),  # the first message's
        ("chatbridge_handling_seconds_count", {"area": area}, 1),
        ("chatbridge_rooms_closed_total", closed, 1),
        ("chatbridge_closure_reasons_total", {"reason": "Resuelto en línea"}, 1),
    ]
    before = [value(name, **labels) for name, labels, _ in expected]

    room_queue(room_id=room.pk, note="quiere un asesor")
    room_take(room_id=room.pk, agent=ana)
    agent_message_send(room_id=room.pk, agent=ana, text="Hola, soy Ana.")
    agent_message_send(room_id=room.pk, agent=ana, text="¿En qué le ayudo?")
    room_transfer(room_id=room.pk, agent=ana, to_agent_id=beto.pk)
    agent_message_send(room_id=room.pk, agent=beto, text="Hola, soy Beto.")
    room_close(room_id=room.pk, by=beto, closure_reason=reason)

    added = [
        (name, value(name, **labels) - was)
        for (name, labels, _), was in zip(expected, before, strict=True)
    ]
    assert added == [(name, increment) for name, _, increment in expected]
    assert value("chatbridge_queue_wait_seconds_sum", area=area) > 0


def test_the_bots_own_close_counts_apart(fake_vendors):
    room = Room.objects.create(customer=CustomerFactory())
    labels = {"area": "none", "served_by": "bot", "closed_by": "automatic"}
    before = value("chatbridge_rooms_closed_total", **labels)

    room_close(room_id=room.pk, reason="Inactividad del cliente")

    assert value("chatbridge_rooms_closed_total", **labels) == before + 1


def test_the_survey_moments(fake_vendors):
    before = {
        "started": value("chatbridge_surveys_total", event="started"),
        "nps": value("chatbridge_survey_answers_total", question="nps"),
        "promoters": value("chatbridge_survey_nps_score_bucket", le="10.0")
        - value("chatbridge_survey_nps_score_bucket", le="8.0"),
        "satisfaction": value("chatbridge_survey_satisfaction_score_sum"),
    }

    survey_observe(event="started")
    survey_observe(question="nps", value=9)
    survey_observe(question="satisfaction", value=4)

    assert value("chatbridge_surveys_total", event="started") == before["started"] + 1
    assert value("chatbridge_survey_answers_total", question="nps") == before["nps"] + 1
    promoters = value("chatbridge_survey_nps_score_bucket", le="10.0") - value(
        "chatbridge_survey_nps_score_bucket", le="8.0"
    )
    assert promoters == before["promoters"] + 1
    assert value("chatbridge_survey_satisfaction_score_sum") == before["satisfaction"] + 4


def test_they_are_served_at_metrics(client):
    body = client.get("/metrics").content.decode()

    for name, kind in (
        ("chatbridge_handoffs_total", "counter"),
        ("chatbridge_queue_wait_seconds", "histogram"),
        ("chatbridge_first_response_seconds", "histogram"),
        ("chatbridge_handling_seconds", "histogram"),
        ("chatbridge_rooms_closed_total", "counter"),
        ("chatbridge_surveys_total", "counter"),
        ("chatbridge_survey_nps_score", "histogram"),
    ):
        assert f"# TYPE {name} {kind}" in body, name
