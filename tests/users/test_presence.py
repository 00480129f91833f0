"""Agents' presence as the reports read it (users.AgentPresence): stretches of online time,
opened by a console's connect, carried by its heartbeats, ended by its close or its silence,
split where the switch changes and at midnight in the business's time zone."""

import datetime as dt
import zoneinfo

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from chatbridge.asgi import application
from rooms.desk.assignment import agent_available_set, agent_gone, agent_seen
from tests.factories import AgentFactory
from users.models import AgentPresence, AgentProfile
from users.services import agent_presence_end, agent_presence_seen, agent_presence_switch

pytestmark = pytest.mark.django_db

BOGOTA = zoneinfo.ZoneInfo("America/Bogota")
NINE = dt.datetime(2026, 11, 2, 9, 0, tzinfo=BOGOTA)


def later(seconds: float) -> dt.datetime:
    return NINE + dt.timedelta(seconds=seconds)


def stretches(user) -> list[tuple]:
    return [
        (row.available, row.started_at, row.seen_at, row.ended_at)
        for row in AgentPresence.objects.filter(user=user).order_by("started_at", "id")
    ]


@pytest.fixture
def ana(settings):
    settings.BUSINESS_TIMEZONE = "America/Bogota"
    settings.PRESENCE_TIMEOUT_SECONDS = 90
    return AgentFactory(username="ana")


def test_heartbeats_carry_one_stretch(ana, django_assert_num_queries):
    agent_presence_seen(user_id=ana.pk, now=NINE)
    with django_assert_num_queries(1):  # a heartbeat: one UPDATE
        agent_presence_seen(user_id=ana.pk, now=later(30))
    agent_presence_seen(user_id=ana.pk, now=later(60))

    assert stretches(ana) == [(True, NINE, later(60), None)]


def test_a_closed_console_ends_its_stretch(ana):
    agent_presence_seen(user_id=ana.pk, now=NINE)
    agent_presence_seen(user_id=ana.pk, now=later(30))
    agent_presence_end(user_id=ana.pk, now=later(45))
    agent_presence_seen(user_id=ana.pk, now=later(600))

    assert stretches(ana) == [
        (True, NINE, later(45), later(45)),
        (True, later(600), later(600), None),
    ]


def test_a_console_that_went_silent_ended_at_its_last_heartbeat(ana):
    agent_presence_seen(user_id=ana.pk, now=NINE)
    agent_presence_seen(user_id=ana.pk, now=later(30))
    agent_presence_seen(user_id=ana.pk, now=later(30 + 91))  # longer than the timeout: gone

    assert stretches(ana) == [
        (True, NINE, later(30), later(30)),
        (True, later(121), later(121), None),
    ]
    agent_presence_end(user_id=ana.pk, now=later(400))  # its close, long after: still at 121
    assert stretches(ana)[-1] == (True, later(121), later(121), later(121))


def test_the_switch_splits_the_stretch(ana):
    agent_presence_seen(user_id=ana.pk, now=NINE)
    AgentProfile.objects.filter(user=ana).update(available=False)
    agent_presence_switch(user_id=ana.pk, available=False, now=later(20))
    agent_presence_seen(user_id=ana.pk, now=later(30))

    assert stretches(ana) == [
        (True, NINE, later(20), later(20)),
        (False, later(20), later(30), None),
    ]


def test_a_switch_changed_elsewhere_is_seen_at_the_next_heartbeat(ana):
    agent_presence_seen(user_id=ana.pk, now=NINE)
    AgentProfile.objects.filter(user=ana).update(available=False)  # the admin's list, say
    agent_presence_seen(user_id=ana.pk, now=later(30))

    assert stretches(ana) == [
        (True, NINE, later(30), later(30)),
        (False, later(30), later(30), None),
    ]


def test_the_switch_of_an_agent_offline_records_nothing(ana):
    agent_presence_switch(user_id=ana.pk, available=False, now=NINE)

    assert stretches(ana) == []


def test_a_stretch_is_split_at_midnight_where_the_bank_works(ana):
    evening = dt.datetime(2026, 11, 2, 23, 59, 40, tzinfo=BOGOTA)
    midnight = dt.datetime(2026, 11, 3, tzinfo=BOGOTA)
    agent_presence_seen(user_id=ana.pk, now=evening)
    agent_presence_seen(user_id=ana.pk, now=midnight + dt.timedelta(seconds=10))
    agent_presence_end(user_id=ana.pk, now=midnight + dt.timedelta(seconds=30))

    assert stretches(ana) == [
        (True, evening, midnight, midnight),
        (True, midnight, midnight + dt.timedelta(seconds=30), midnight + dt.timedelta(seconds=30)),
    ]


def test_the_desks_calls_record_presence(ana):
    agent_seen(user_id=ana.pk)  # a console connects
    agent_seen(user_id=ana.pk)  # its heartbeat
    agent_available_set(user_id=ana.pk, available=False)
    agent_gone(user_id=ana.pk)  # it closes

    first, second = stretches(ana)
    assert first[0] is True and first[3] is not None
    assert second[0] is False and second[3] is not None
    assert first[3] == second[1]
    assert not AgentPresence.objects.filter(ended_at=None).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_console_connecting_and_closing_is_a_stretch(fake_vendors, settings):
    settings.AUTO_ASSIGN = False
    agent = await sync_to_async(AgentFactory)(username="beto")
    cookie = await sync_to_async(_session_cookie)(agent)
    console = WebsocketCommunicator(
        application,
        "/ws/agent/",
        headers=[(b"origin", b"http://localhost"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, _ = await console.connect(timeout=10)
    assert connected
    await console.receive_json_from(timeout=10)  # the snapshot: it is connected, and seen
    opened = await AgentPresence.objects.filter(user=agent, ended_at=None).afirst()
    await console.disconnect()

    assert opened is not None
    ended = await AgentPresence.objects.aget(pk=opened.pk)
    assert ended.ended_at is not None and ended.ended_at >= ended.started_at


def _session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value
