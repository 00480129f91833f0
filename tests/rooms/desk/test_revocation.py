"""A revoked agent stops at once: deactivated, taken out of the agents group, signed out
elsewhere (their session deleted) or expired, the open console is closed within seconds and
nothing it sends afterwards is done. Before, the consumer checked only at connect."""

import asyncio
import datetime as dt

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.utils import timezone

from chatbridge.asgi import application
from rooms.models import Message, Room
from tests.factories import AgentFactory
from tests.rooms.desk.test_consumers import (
    FRAME_WAIT,
    connect,
    queued_room,
    receive_until,
    session_cookie,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


async def closed_with(communicator: WebsocketCommunicator, timeout: float = FRAME_WAIT) -> int:
    """Frames until the server closes the socket; its close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (remaining := deadline - loop.time()) > 0:
        output = await communicator.receive_output(timeout=remaining)
        if output["type"] == "websocket.close":
            return output["code"]
    raise AssertionError("the console was not closed")


async def agent_with_room() -> tuple[User, WebsocketCommunicator, Room]:
    room = await queued_room()
    agent = await sync_to_async(AgentFactory)(username="ana")
    communicator = await connect(agent)
    await communicator.send_json_to({"type": "take", "room": room.pk, "id": 1})
    await receive_until(communicator, lambda frame: frame["type"] == "ack", timeout=FRAME_WAIT)
    return agent, communicator, room


def _deactivate(user: User) -> None:
    user.is_active = False
    user.save()


def _remove_from_agents(user: User) -> None:
    user.groups.remove(Group.objects.get(name="agents"))


def _clear_agents_group(user: User) -> None:
    Group.objects.get(name="agents").user_set.clear()


def _delete_sessions(user: User) -> None:
    for session in Session.objects.all():
        if session.get_decoded().get("_auth_user_id") == str(user.pk):
            session.delete()


@pytest.mark.parametrize(
    ("revoke", "code"),
    [
        (_deactivate, 4401),
        (_remove_from_agents, 4403),
        (_clear_agents_group, 4403),
        (_delete_sessions, 4401),
    ],
)
async def test_a_revoked_agents_console_is_closed_at_once(
    fake_vendors, no_auto_assign, revoke, code, record_fault
):
    agent, communicator, room = await agent_with_room()
    started = asyncio.get_running_loop().time()
    await sync_to_async(revoke)(agent)
    assert await closed_with(communicator) == code
    waited = asyncio.get_running_loop().time() - started
    room = await Room.objects.aget(pk=room.pk)
    if code == 4403 or revoke is _deactivate:
        # No longer an agent: the customer goes back to the queue, not left with nobody.
        assert (room.status, room.agent_id) == (Room.Status.QUEUED, None)
    else:
        # Signed out elsewhere, still an agent: the room stays theirs.
        assert (room.status, room.agent_id) == (Room.Status.ASSIGNED, agent.pk)
    record_fault(
        f"Attack: a revoked agent keeps the console open ({revoke.__name__.strip('_')})",
        done="an agent's open console with a room, then the revocation",
        held=f"closed with {code}; the room back in the queue if they are no longer an agent",
        figures=f"closed {waited * 1000:.0f} ms after the change",
    )


async def test_without_any_signal_the_next_command_is_refused(fake_vendors, no_auto_assign):
    """A bulk update sends no signal; the command itself checks the session again."""
    agent, communicator, room = await agent_with_room()
    await sync_to_async(User.objects.filter(pk=agent.pk).update)(is_active=False)
    await communicator.send_json_to({"type": "send", "room": room.pk, "text": "hola", "id": 2})
    assert await closed_with(communicator) == 4401
    assert not await Message.objects.filter(author=Message.Author.AGENT).aexists()


async def test_an_expired_session_closes_the_console_at_its_expiry(fake_vendors, settings):
    """No periodic re-check within the test: the console looks again when its session ends."""
    settings.SESSION_RECHECK_SECONDS = 600
    agent = await sync_to_async(AgentFactory)(username="ana")
    cookie = await sync_to_async(session_cookie)(agent)
    soon = timezone.now() + dt.timedelta(seconds=2)
    await Session.objects.filter(session_key=cookie).aupdate(expire_date=soon)
    communicator = WebsocketCommunicator(
        application,
        "/ws/agent/",
        headers=[(b"origin", b"http://localhost"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, _ = await communicator.connect(timeout=FRAME_WAIT)
    assert connected
    snapshot = await communicator.receive_json_from(timeout=FRAME_WAIT)
    assert snapshot["type"] == "snapshot"
    assert await closed_with(communicator) == 4401
    assert timezone.now() >= soon
