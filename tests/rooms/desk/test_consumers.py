"""The agent's websocket, through the real ASGI stack (session cookie, origin check) and the real
Redis channel layer, with WebsocketCommunicator."""

import asyncio
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from chatbridge.asgi import application
from rooms.models import ClosureReason, Message, MessageTemplate, Room, RoomEvent, Survey
from tests.factories import AgentFactory
from tests.payloads import signed_post, text_from

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

WA = "573005550001"
# How long a test waits for the console's handshake or next frame: Channels' default (1 s) is a
# busy machine's normal, not a failure. Waits end as soon as the frame is there.
FRAME_WAIT = 10


def session_cookie(user: User) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


async def connect(
    user: User | None,
    *,
    origin: bytes = b"http://localhost",
    accept_language: str = "",
    language_cookie: str = "",
) -> WebsocketCommunicator:
    """The console's handshake; `accept_language` as its browser sends it, `language_cookie` as
    the console's language selector (Django's set_language) leaves it."""
    headers = [(b"origin", origin)]
    if accept_language:
        headers.append((b"accept-language", accept_language.encode()))
    if user is not None:
        cookie = await sync_to_async(session_cookie)(user)
        cookies = f"sessionid={cookie}"
        if language_cookie:
            cookies += f"; {settings.LANGUAGE_COOKIE_NAME}={language_cookie}"
        headers.append((b"cookie", cookies.encode()))
    communicator = WebsocketCommunicator(application, "/ws/agent/", headers=headers)
    connected, _ = await communicator.connect(timeout=FRAME_WAIT)
    assert connected
    return communicator


async def receive_until(communicator: WebsocketCommunicator, predicate, timeout: float = 5):
    """Frames until one matches; returns it (the others are dropped)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError("no matching frame")
        frame = await communicator.receive_json_from(timeout=remaining)
        if predicate(frame):
            return frame


def webhook(payload: dict) -> int:
    return signed_post(Client(), payload).status_code


async def queued_room(wa_id: str = WA) -> Room:
    """A customer asks for a human: their room is queued."""
    assert await sync_to_async(webhook)(text_from(wa_id, "agente")) == 200
    return await Room.objects.aget(customer__uid=wa_id)


async def test_an_agents_close_asks_the_survey(fake_vendors, whatsapp, settings):
    settings.SURVEY_ENABLED = True
    room = await queued_room("573005550091")
    agent = await sync_to_async(AgentFactory)(username="ana")
    reason, _ = await ClosureReason.objects.aget_or_create(title="Resuelto")
    communicator = await connect(agent)
    await receive_until(communicator, lambda f: f["type"] == "room")

    await communicator.send_json_to({"type": "close", "room": room.pk, "reason": reason.pk})

    await receive_until(communicator, lambda f: f.get("kind") == "room.closed")
    survey = await Survey.objects.aget(room=room)
    assert (survey.status, survey.step) == ("asking", "nps")
    asked = whatsapp.sent_to("573005550091")[-1]
    assert asked["type"] == "interactive" and "recomiendes" in asked["text"]
    await communicator.disconnect()


async def test_anonymous_is_refused_with_4401(fake_vendors):
    communicator = await connect(None)
    assert (await communicator.receive_output(timeout=2))["code"] == 4401


async def test_non_agent_is_refused_with_4403(fake_vendors):
    user = await sync_to_async(User.objects.create_user)("customer-care-viewer", password="x")
    communicator = await connect(user)
    assert (await communicator.receive_output(timeout=2))["code"] == 4403


async def test_foreign_origin_is_refused(fake_vendors):
    agent = await sync_to_async(AgentFactory)(username="ana")
    cookie = await sync_to_async(session_cookie)(agent)
    communicator = WebsocketCommunicator(
        application,
        "/ws/agent/",
        headers=[(b"origin", b"https://evil.example"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, _ = await communicator.connect(timeout=FRAME_WAIT)
    assert not connected


async def test_snapshot_then_take_then_live_customer_messages(fake_vendors, no_auto_assign):
    room = await queued_room()
    agent = await sync_to_async(AgentFactory)(username="ana")
    communicator = await connect(agent)

    snapshot = await communicator.receive_json_from(timeout=FRAME_WAIT)
    assert snapshot["type"] == "snapshot"
    assert [r["id"] for r in snapshot["queue"]] == [room.pk]
    assert snapshot["queue"][0]["handoff_note"] == "El cliente pidió hablar con un asesor."
    assert snapshot["agent"] == {
        "id": agent.pk,
        "name": "Ana",
        "capacity": 5,
        "load": 0,
        "available": True,
    }

    await communicator.send_json_to({"type": "take", "room": room.pk, "id": 1})
    ack = await receive_until(communicator, lambda f: f["type"] == "ack")
    assert ack == {"type": "ack", "id": 1, "for": "take", "room": room.pk}
    detail = await receive_until(communicator, lambda f: f["type"] == "room")
    assert [m["text"] for m in detail["room"]["messages"]][:1] == ["agente"]

    assert await sync_to_async(webhook)(text_from(WA, "hola, ¿me ayudas?")) == 200
    event = await receive_until(communicator, lambda f: f.get("kind") == "message.new")
    assert event["data"]["text"] == "hola, ¿me ayudas?"
    assert event["seq"] == detail["room"]["seq"] + 1
    await communicator.disconnect()


async def test_agent_reply_reaches_whatsapp_with_its_status(fake_vendors, whatsapp, no_auto_assign):
    room = await queued_room()
    agent = await sync_to_async(AgentFactory)(username="ana")
    communicator = await connect(agent)
    await communicator.send_json_to({"type": "take", "room": room.pk})
    await receive_until(communicator, lambda f: f["type"] == "room")
    sent_before = len(whatsapp.sent)

    await communicator.send_json_to(
        {"type": "send", "room": room.pk, "text": "Hola, soy Ana.", "id": 7}
    )

    ack = await receive_until(communicator, lambda f: f["type"] == "ack")
    new = await receive_until(communicator, lambda f: f.get("kind") == "message.new")
    assert new["data"]["author"] == "agent"
    status = await receive_until(communicator, lambda f: f.get("kind") == "message.status")
    assert status["data"] == {
        "id": ack["message"],
        "status": "sent",
        "error_code": None,
        "error_detail": "",
    }
    assert whatsapp.sent[sent_before]["text"] == "Hola, soy Ana."
    stored = await Message.objects.aget(pk=ack["message"])
    assert (stored.status, stored.agent_id) == ("sent", agent.pk)
    await communicator.disconnect()


async def test_window_closed_reaches_the_agent_with_its_reason(
    fake_vendors, whatsapp, no_auto_assign
):
    room = await queued_room()
    agent = await sync_to_async(AgentFactory)(username="ana")
    communicator = await connect(agent)
    await communicator.send_json_to({"type": "take", "room": room.pk})
    await receive_until(communicator, lambda f: f["type"] == "room")
    whatsapp.fail_with_code(131047, details="More than 24 hours have passed")

    await communicator.send_json_to({"type": "send", "room": room.pk, "text": "¿Sigues ahí?"})

    status = await receive_until(communicator, lambda f: f.get("kind") == "message.status")
    assert status["data"]["status"] == "failed"
    assert status["data"]["error_code"] == 131047
    assert "24 hours" in status["data"]["error_detail"]
    await communicator.disconnect()


async def test_after_the_window_the_console_sends_a_template(
    fake_vendors, whatsapp, no_auto_assign
):
    room = await queued_room()
    template = await MessageTemplate.objects.acreate(
        name="seguimiento_caso",
        language="es",
        body="Hola {{1}}, seguimos.",
        parameters=["customer_first_name"],
    )
    whatsapp.templates = {("seguimiento_caso", "es")}
    agent = await sync_to_async(AgentFactory)(username="ana")
    communicator = await connect(agent)
    snapshot = await receive_until(communicator, lambda f: f["type"] == "snapshot")
    assert [t["name"] for t in snapshot["templates"]] == ["seguimiento_caso"]
    await communicator.send_json_to({"type": "take", "room": room.pk})
    taken = await receive_until(communicator, lambda f: f["type"] == "room")
    assert taken["room"]["template_fills"]["customer_first_name"] == "Cliente"
    await Room.objects.filter(pk=room.pk).aupdate(
        last_customer_at=room.opened_at - timezone.timedelta(hours=25)
    )

    await communicator.send_json_to({"type": "send", "room": room.pk, "text": "¿Sigues ahí?"})
    refused = await receive_until(communicator, lambda f: f["type"] == "error")
    assert (refused["code"], refused["message"]) == (
        "window_closed",
        "Pasaron más de 24 horas desde el último mensaje del cliente: ahora WhatsApp solo lleva "
        "una plantilla aprobada.",
    )
    await communicator.send_json_to({"type": "template", "room": room.pk, "template": template.pk})
    ack = await receive_until(communicator, lambda f: f["type"] == "ack")
    status = await receive_until(communicator, lambda f: f.get("kind") == "message.status")
    assert status["data"]["status"] == "sent"
    assert whatsapp.sent[-1]["body"]["template"]["name"] == "seguimiento_caso"
    stored = await Message.objects.aget(pk=ack["message"])
    assert stored.text == "Hola Cliente, seguimos."
    await communicator.send_json_to({"type": "template", "room": room.pk, "template": "x"})
    assert (await receive_until(communicator, lambda f: f["type"] == "error"))["code"] == "invalid"
    await communicator.disconnect()


async def test_close_with_reason_frees_capacity_and_serves_the_queue(fake_vendors, whatsapp):
    first = await queued_room("573005550001")
    second = await queued_room("573005550002")
    agent = await sync_to_async(AgentFactory)(username="ana", capacity=1)
    reason, _ = await ClosureReason.objects.aget_or_create(title="Resuelto")
    communicator = await connect(agent)
    # Auto-assignment: the oldest queued room goes to the agent who came online; capacity 1.
    assigned = await receive_until(communicator, lambda f: f["type"] == "room")
    assert assigned["room"]["id"] == first.pk
    assert (await Room.objects.aget(pk=second.pk)).status == "queued"

    await communicator.send_json_to({"type": "close", "room": first.pk, "reason": reason.pk})

    closed = await receive_until(communicator, lambda f: f.get("kind") == "room.closed")
    assert closed["data"]["reason"] == "Resuelto"
    following = await receive_until(communicator, lambda f: f["type"] == "room")
    assert following["room"]["id"] == second.pk
    room = await Room.objects.aget(pk=first.pk)
    assert (room.status, room.closure_reason_id, room.closed_by_id) == (
        "closed",
        reason.pk,
        agent.pk,
    )
    texts = [m["text"] for m in whatsapp.sent_to("573005550001")]
    assert texts[-1].startswith("Gracias por escribirnos.")
    await communicator.disconnect()


async def test_release_transfer_and_return_to_bot(fake_vendors, no_auto_assign):
    room = await queued_room()
    ana = await sync_to_async(AgentFactory)(username="ana")
    beto = await sync_to_async(AgentFactory)(username="beto")
    ana_ws, beto_ws = await connect(ana), await connect(beto)

    await ana_ws.send_json_to({"type": "take", "room": room.pk})
    await receive_until(ana_ws, lambda f: f["type"] == "room")
    await ana_ws.send_json_to({"type": "transfer", "room": room.pk, "agent": beto.pk})
    moved = await receive_until(ana_ws, lambda f: f.get("kind") == "room.assigned")
    assert moved["data"]["agent"] == beto.pk
    received = await receive_until(beto_ws, lambda f: f["type"] == "room")
    assert received["room"]["id"] == room.pk

    await beto_ws.send_json_to({"type": "release", "room": room.pk})
    await receive_until(beto_ws, lambda f: f.get("kind") == "room.released")
    assert (await Room.objects.aget(pk=room.pk)).status == "queued"

    await ana_ws.send_json_to({"type": "take", "room": room.pk})
    await receive_until(ana_ws, lambda f: f["type"] == "room")
    await ana_ws.send_json_to({"type": "to_bot", "room": room.pk})
    await receive_until(ana_ws, lambda f: f.get("kind") == "room.returned_to_bot")
    assert (await Room.objects.aget(pk=room.pk)).status == "bot"
    kinds = [
        e
        async for e in RoomEvent.objects.filter(room=room, kind__startswith="room.")
        .order_by("seq")
        .values_list("kind", "actor_id")
    ]
    assert kinds == [
        ("room.queued", None),
        ("room.assigned", ana.pk),
        ("room.assigned", ana.pk),  # the transfer, done by Ana, to Beto
        ("room.released", beto.pk),
        ("room.assigned", ana.pk),
        ("room.returned_to_bot", ana.pk),
    ]
    await ana_ws.disconnect()
    await beto_ws.disconnect()


async def test_an_agent_cannot_act_on_another_agents_room(fake_vendors, no_auto_assign):
    room = await queued_room()
    ana = await sync_to_async(AgentFactory)(username="ana")
    beto = await sync_to_async(AgentFactory)(username="beto")
    ana_ws, beto_ws = await connect(ana), await connect(beto)
    await ana_ws.send_json_to({"type": "take", "room": room.pk})
    await receive_until(ana_ws, lambda f: f["type"] == "room")

    for frame in [
        {"type": "send", "room": room.pk, "text": "soy Beto"},
        {
            "type": "close",
            "room": room.pk,
            "reason": (await ClosureReason.objects.aget_or_create(title="x"))[0].pk,
        },
        {"type": "release", "room": room.pk},
        {"type": "to_bot", "room": room.pk},
        {"type": "transfer", "room": room.pk, "agent": beto.pk},
        {"type": "take", "room": room.pk},
        {"type": "sync", "rooms": {str(room.pk): 0}},
        {"type": "typing", "room": room.pk},
    ]:
        await beto_ws.send_json_to({**frame, "id": frame["type"]})
        error = await receive_until(beto_ws, lambda f: f["type"] in ("error", "ack"))
        assert error["type"] == "error", frame
        assert error["code"] in ("not_your_room", "not_queued"), error

    assert not await Message.objects.filter(text="soy Beto").aexists()
    assert (await Room.objects.aget(pk=room.pk)).agent_id == ana.pk
    await ana_ws.disconnect()
    await beto_ws.disconnect()


async def test_a_transfer_carries_its_note_and_the_transfer_list_is_live(
    fake_vendors, no_auto_assign
):
    room = await queued_room()
    ana = await sync_to_async(AgentFactory)(username="ana", first_name="Ana")
    beto = await sync_to_async(AgentFactory)(username="beto", first_name="Beto")
    ana_ws = await connect(ana)
    await ana_ws.send_json_to({"type": "take", "room": room.pk})
    await receive_until(ana_ws, lambda f: f["type"] == "room")
    await ana_ws.send_json_to({"type": "agents", "id": 3})
    listed = await receive_until(ana_ws, lambda f: f["type"] == "ack" and f.get("id") == 3)
    beto_then = next(a for a in listed["agents"] if a["id"] == beto.pk)
    assert beto_then["online"] is False  # not connected yet
    beto_ws = await connect(beto)
    await receive_until(beto_ws, lambda f: f["type"] == "snapshot")  # Beto is online now
    await ana_ws.send_json_to({"type": "agents", "id": 4})
    listed = await receive_until(ana_ws, lambda f: f["type"] == "ack" and f.get("id") == 4)
    assert next(a for a in listed["agents"] if a["id"] == beto.pk)["online"] is True

    note = "Quiere cambiar la fecha de corte; ya validé su identidad."
    await ana_ws.send_json_to({"type": "transfer", "room": room.pk, "agent": beto.pk, "note": note})
    told = await receive_until(beto_ws, lambda f: f.get("kind") == "room.assigned")
    assert told["data"] == {
        "agent": beto.pk,
        "previous_agent": ana.pk,
        "how": "transferred",
        "note": note,
    }
    await ana_ws.send_json_to({"type": "transfer", "room": room.pk, "agent": ana.pk, "note": 5})
    refused = await receive_until(ana_ws, lambda f: f["type"] == "error")
    assert refused["code"] == "invalid"
    await ana_ws.disconnect()
    await beto_ws.disconnect()


async def test_two_agents_take_the_same_room_exactly_one_wins(fake_vendors, no_auto_assign):
    room = await queued_room()
    ana = await sync_to_async(AgentFactory)(username="ana")
    beto = await sync_to_async(AgentFactory)(username="beto")
    ana_ws, beto_ws = await connect(ana), await connect(beto)
    await ana_ws.receive_json_from(timeout=FRAME_WAIT)
    await beto_ws.receive_json_from(timeout=FRAME_WAIT)

    await asyncio.gather(
        ana_ws.send_json_to({"type": "take", "room": room.pk, "id": "a"}),
        beto_ws.send_json_to({"type": "take", "room": room.pk, "id": "b"}),
    )
    results = [
        await receive_until(ws, lambda f: f["type"] in ("ack", "error")) for ws in (ana_ws, beto_ws)
    ]
    assert sorted(r["type"] for r in results) == ["ack", "error"]
    assert [r["code"] for r in results if r["type"] == "error"] == ["not_queued"]
    await ana_ws.disconnect()
    await beto_ws.disconnect()


async def test_capacity_is_never_exceeded(fake_vendors, no_auto_assign):
    rooms = [await queued_room(f"57300555010{i}") for i in range(3)]
    ana = await sync_to_async(AgentFactory)(username="ana", capacity=2)
    ws = await connect(ana)
    codes = []
    for room in rooms:
        await ws.send_json_to({"type": "take", "room": room.pk})
        frame = await receive_until(ws, lambda f: f["type"] in ("ack", "error"))
        codes.append(frame.get("code", "ok"))
    assert codes == ["ok", "ok", "at_capacity"]
    await ws.disconnect()


# What an agent with a capacity of 1 reads taking a second room, and a console sending what is not
# JSON (a frame refused before any command), in each of the console's languages.
AT_CAPACITY = {
    "en": "You already have 1 conversation, your maximum: close or transfer it to take another.",
    "es": "Ya atiendes 1 conversación, tu máximo: ciérrala o transfiérela para tomar otra.",
}
NOT_JSON = {
    "en": "The console sent something that is not JSON: reload the page.",
    "es": "La consola envió algo que no es JSON: recarga la página.",
}


@pytest.mark.parametrize(
    ("accept_language", "language_cookie", "language"),
    [
        ("en-US,en;q=0.9", "", "en"),
        ("es-CO,es;q=0.9,en;q=0.8", "", "es"),
        ("", "", "es"),  # no preference: LANGUAGE_CODE
        ("fr-FR,fr;q=0.9,en;q=0.5", "", "en"),  # the first the browser asks for that we speak
        ("en-US,en;q=0.9", "es", "es"),  # the console's language selector wins
        ("es-CO", "en", "en"),
    ],
)
async def test_an_agent_at_capacity_is_told_so_in_the_consoles_language(
    fake_vendors, no_auto_assign, accept_language, language_cookie, language
):
    first, second = [await queued_room(f"57300555020{i}") for i in range(2)]
    ana = await sync_to_async(AgentFactory)(username="ana", capacity=1)
    ws = await connect(ana, accept_language=accept_language, language_cookie=language_cookie)
    await ws.send_json_to({"type": "take", "room": first.pk, "id": 1})
    assert (await receive_until(ws, lambda f: f["type"] in ("ack", "error")))["type"] == "ack"

    await ws.send_json_to({"type": "take", "room": second.pk, "id": 2})
    refused = await receive_until(ws, lambda f: f["type"] in ("ack", "error"))
    assert refused == {
        "type": "error",
        "id": 2,
        "code": "at_capacity",
        "message": AT_CAPACITY[language],
    }
    await ws.send_to(text_data="{not json")
    refused = await receive_until(ws, lambda f: f["type"] == "error")
    assert (refused["code"], refused["message"]) == ("bad_frame", NOT_JSON[language])
    await ws.disconnect()


async def test_without_any_preference_the_console_speaks_language_code(
    fake_vendors, no_auto_assign, settings
):
    settings.LANGUAGE_CODE = "en"
    ana = await sync_to_async(AgentFactory)(username="ana")
    ws = await connect(ana)
    await ws.send_to(text_data="{not json")
    refused = await receive_until(ws, lambda f: f["type"] == "error")
    assert (refused["code"], refused["message"]) == ("bad_frame", NOT_JSON["en"])
    await ws.disconnect()


async def test_malformed_frames_get_errors_and_the_socket_stays_open(fake_vendors, no_auto_assign):
    ana = await sync_to_async(AgentFactory)(username="ana")
    ws = await connect(ana)
    await ws.receive_json_from(timeout=FRAME_WAIT)
    bad = [
        "not json",
        json.dumps([1, 2]),
        json.dumps({"type": "fly"}),
        json.dumps({"type": "take"}),
        json.dumps({"type": "take", "room": "abc"}),
        json.dumps({"type": "take", "room": True}),
        json.dumps({"type": "send", "room": 1, "text": 5}),
        json.dumps({"type": "sync", "rooms": [1]}),
        json.dumps({"type": "close", "room": 1, "reason": "x"}),
        json.dumps({"type": "take", "room": 99999999}),
        "x" * 70000,
    ]
    for text in bad:
        await ws.send_to(text_data=text)
        frame = await receive_until(ws, lambda f: f["type"] in ("error", "ack"))
        assert frame["type"] == "error", text[:40]
    await ws.send_json_to({"type": "available", "available": False, "id": "still-here"})
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    assert ack["id"] == "still-here"
    await ws.disconnect()


async def test_sync_replays_everything_after_the_last_sequence(fake_vendors, no_auto_assign):
    room = await queued_room()
    ana = await sync_to_async(AgentFactory)(username="ana")
    ws = await connect(ana)
    await ws.send_json_to({"type": "take", "room": room.pk})
    detail = await receive_until(ws, lambda f: f["type"] == "room")
    seen = detail["room"]["seq"]
    await ws.disconnect()

    # While the console is away: three customer messages.
    for text in ["uno", "dos", "tres"]:
        await sync_to_async(webhook)(text_from(WA, text))

    ws = await connect(ana)
    snapshot = await ws.receive_json_from(timeout=FRAME_WAIT)
    assert snapshot["rooms"][0]["seq"] == seen + 3
    await ws.send_json_to({"type": "sync", "rooms": {str(room.pk): seen}, "id": "s"})
    replayed = [await receive_until(ws, lambda f: f["type"] == "event") for _ in range(3)]
    assert [e["data"]["text"] for e in replayed] == ["uno", "dos", "tres"]
    assert [e["seq"] for e in replayed] == [seen + 1, seen + 2, seen + 3]
    ack = await receive_until(ws, lambda f: f["type"] == "ack")
    assert ack["replayed"] == 3
    await ws.disconnect()


async def test_a_consumer_stopped_without_a_disconnect_stops_its_heartbeat(
    fake_vendors, no_auto_assign
):
    """Daphne cancels a consumer that has not stopped within its close timeout (busy in a slow
    command when the socket went); a heartbeat left running would keep the agent online."""
    ana = await sync_to_async(AgentFactory)(username="ana")
    ws = await connect(ana)
    await ws.receive_json_from(timeout=FRAME_WAIT)

    ws.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await ws.future

    coroutines = [getattr(task.get_coro(), "__qualname__", "") for task in asyncio.all_tasks()]
    assert "AgentConsumer._heartbeat" not in coroutines


async def test_each_console_sees_only_its_areas_queues(fake_vendors, no_auto_assign):
    """Level 2's queue reaches level 2's consoles, not level 1's; a level 1 agent who asks for
    a level 2 room anyway is refused; moving a room to level 2 shows it there."""
    from rooms.models import Area

    level_2 = await Area.objects.acreate(name="Level 2", code="level-2")
    ana = await sync_to_async(AgentFactory)(username="ana")  # no area: the default one
    lucia = await sync_to_async(AgentFactory)(username="lucia")
    await level_2.agents.aadd(lucia)
    ana_ws, lucia_ws = await connect(ana), await connect(lucia)
    ana_snapshot = await receive_until(ana_ws, lambda f: f["type"] == "snapshot")
    lucia_snapshot = await receive_until(lucia_ws, lambda f: f["type"] == "snapshot")
    assert [a["code"] for a in ana_snapshot["areas"] if a["mine"]] == ["general"]
    assert [a["code"] for a in lucia_snapshot["areas"] if a["mine"]] == ["level-2"]

    assert (
        await sync_to_async(webhook)(text_from(WA, "necesito un asesor de nivel 2 por favor"))
        == 200
    )
    frame = await receive_until(lucia_ws, lambda f: f["type"] == "queue")
    room = await Room.objects.aget(customer__uid=WA)
    assert (frame["area"], [r["id"] for r in frame["queue"]]) == (level_2.pk, [room.pk])
    await ana_ws.send_json_to({"type": "take", "room": room.pk, "id": "t"})
    seen = []  # what reached Ana meanwhile: nothing of level 2's queue
    refused = await receive_until(ana_ws, lambda f: seen.append(f) or f["type"] == "error")
    assert refused["code"] == "not_your_area"
    assert [f for f in seen if f["type"] == "queue"] == []

    # A level 1 room, taken by Ana and sent to level 2 with a note: Lucía's queue shows it.
    assert await sync_to_async(webhook)(text_from("573005550002", "agente")) == 200
    other = await Room.objects.aget(customer__uid="573005550002")
    await ana_ws.send_json_to({"type": "take", "room": other.pk, "id": "t2"})
    await receive_until(ana_ws, lambda f: f["type"] == "room")
    await ana_ws.send_json_to(
        {"type": "transfer_area", "room": other.pk, "area": level_2.pk, "note": "fraude"}
    )
    moved = await receive_until(ana_ws, lambda f: f.get("kind") == "room.area_transferred")
    assert moved["data"]["note"] == "fraude"
    frame = await receive_until(
        lucia_ws, lambda f: f["type"] == "queue" and other.pk in [r["id"] for r in f["queue"]]
    )
    assert frame["area"] == level_2.pk
    await ana_ws.disconnect()
    await lucia_ws.disconnect()


async def test_an_agent_added_to_an_area_sees_its_queue_at_once(fake_vendors, no_auto_assign):
    from rooms.models import Area

    level_2 = await Area.objects.acreate(name="Level 2", code="level-2")
    lucia = await sync_to_async(AgentFactory)(username="lucia")
    lucia_ws = await connect(lucia)
    await receive_until(lucia_ws, lambda f: f["type"] == "snapshot")

    def mine(frame: dict) -> list[str]:
        return [area["code"] for area in frame["areas"] if area["mine"]]

    await level_2.agents.aadd(lucia)  # as the admin's form does
    # (The new area's own fresh snapshot, published from another thread, may come first.)
    fresh = await receive_until(
        lucia_ws, lambda f: f["type"] == "snapshot" and mine(f) == ["level-2"]
    )
    assert (
        await sync_to_async(webhook)(text_from(WA, "necesito un asesor de nivel 2 por favor"))
        == 200
    )
    frame = await receive_until(lucia_ws, lambda f: f["type"] == "queue")
    assert frame["area"] == level_2.pk and len(frame["queue"]) == 1

    await level_2.agents.aclear()
    fresh = await receive_until(lucia_ws, lambda f: f["type"] == "snapshot")
    assert mine(fresh) == ["general"]
    assert fresh["queue"] == []  # level 2's room is not hers to see any more
    await lucia_ws.disconnect()


async def supervisor(username: str = "sofia"):
    from django.contrib.auth.models import Group

    user = await sync_to_async(AgentFactory)(username=username, first_name="Sofía")
    group, _ = await Group.objects.aget_or_create(name="supervisors")
    await user.groups.aadd(group)
    return user


async def test_a_supervisor_sees_every_area_reads_a_room_live_and_moves_it(
    fake_vendors, no_auto_assign
):
    from rooms.models import Area

    level_2 = await Area.objects.acreate(name="Level 2", code="level-2")
    sofia = await supervisor()
    ana = await sync_to_async(AgentFactory)(username="ana")
    beto = await sync_to_async(AgentFactory)(username="beto")
    sofia_ws, ana_ws = await connect(sofia), await connect(ana)
    snapshot = await receive_until(sofia_ws, lambda f: f["type"] == "snapshot")
    assert snapshot["supervisor"] is True
    assert set(snapshot["queue_areas"]) >= {level_2.pk}
    await receive_until(ana_ws, lambda f: f["type"] == "snapshot")

    # A level 2 hand-off: in the supervisor's queue view too.
    assert (
        await sync_to_async(webhook)(text_from(WA, "necesito un asesor de nivel 2 por favor"))
        == 200
    )
    frame = await receive_until(sofia_ws, lambda f: f["type"] == "queue" and f["queue"])
    room_id = frame["queue"][0]["id"]

    # The overview: every agent and every open room.
    await sofia_ws.send_json_to({"type": "overview", "id": "o"})
    overview = await receive_until(sofia_ws, lambda f: f.get("id") == "o")
    assert {a["id"] for a in overview["agents"]} >= {ana.pk, beto.pk, sofia.pk}
    assert [r["id"] for r in overview["rooms"]] == [room_id]

    # Read it live, without taking it; then give it to Ana, who did not work level 2.
    await sofia_ws.send_json_to({"type": "watch", "room": room_id, "id": "w"})
    watched = await receive_until(sofia_ws, lambda f: f.get("id") == "w")
    assert watched["detail"]["messages"][0]["text"].startswith("necesito un asesor")
    await sofia_ws.send_json_to({"type": "reassign", "room": room_id, "agent": ana.pk, "id": "r"})
    assert (await receive_until(sofia_ws, lambda f: f.get("id") == "r"))["type"] == "ack"
    await receive_until(ana_ws, lambda f: f["type"] == "room" and f["room"]["id"] == room_id)
    event = await receive_until(
        sofia_ws, lambda f: f.get("watched") and f.get("kind") == "room.assigned"
    )
    assert event["data"]["how"] == "reassigned" and event["actor"] == sofia.pk

    # The customer writes: the supervisor reads it as it comes.
    assert await sync_to_async(webhook)(text_from(WA, "¿hola?")) == 200
    live = await receive_until(
        sofia_ws, lambda f: f.get("watched") and f.get("kind") == "message.new"
    )
    assert live["data"]["text"] == "¿hola?"

    # Ana switched to unavailable by the supervisor: her console is told.
    await sofia_ws.send_json_to(
        {"type": "agent_available", "agent": ana.pk, "available": False, "id": "a"}
    )
    assert (await receive_until(sofia_ws, lambda f: f.get("id") == "a"))["type"] == "ack"
    told = await receive_until(ana_ws, lambda f: f["type"] == "available")
    assert told == {"type": "available", "available": False, "by": sofia.pk}

    # And closes it, though it is Ana's.
    reason = await ClosureReason.objects.acreate(title="Cerrado por supervisión")
    await sofia_ws.send_json_to({"type": "close", "room": room_id, "reason": reason.pk, "id": "c"})
    assert (await receive_until(sofia_ws, lambda f: f.get("id") == "c"))["type"] == "ack"
    assert (await Room.objects.aget(pk=room_id)).status == Room.Status.CLOSED
    await sofia_ws.disconnect()
    await ana_ws.disconnect()


async def test_an_agent_cannot_do_what_a_supervisor_does(fake_vendors, no_auto_assign):
    room = await queued_room()
    ana = await sync_to_async(AgentFactory)(username="ana")
    beto = await sync_to_async(AgentFactory)(username="beto")
    ana_ws, beto_ws = await connect(ana), await connect(beto)
    await receive_until(ana_ws, lambda f: f["type"] == "snapshot")
    snapshot = await receive_until(beto_ws, lambda f: f["type"] == "snapshot")
    assert snapshot["supervisor"] is False
    await ana_ws.send_json_to({"type": "take", "room": room.pk})
    await receive_until(ana_ws, lambda f: f["type"] == "room")

    reason = await ClosureReason.objects.acreate(title="Resuelto")
    for frame in (
        {"type": "overview"},
        {"type": "watch", "room": room.pk},
        {"type": "reassign", "room": room.pk, "agent": beto.pk},
        {"type": "agent_available", "agent": ana.pk, "available": False},
    ):
        await beto_ws.send_json_to(frame)
        refused = await receive_until(beto_ws, lambda f: f["type"] == "error")
        assert refused["code"] == "not_a_supervisor", frame
    await beto_ws.send_json_to({"type": "close", "room": room.pk, "reason": reason.pk})
    refused = await receive_until(beto_ws, lambda f: f["type"] == "error")
    assert refused["code"] == "not_your_room"
    room = await Room.objects.select_related("agent").aget(pk=room.pk)
    assert (room.status, room.agent_id) == (Room.Status.ASSIGNED, ana.pk)
    from users.models import AgentProfile

    assert (await AgentProfile.objects.aget(user_id=ana.pk)).available
    await ana_ws.disconnect()
    await beto_ws.disconnect()


async def test_alerts_reach_supervisors_consoles_only(fake_vendors, no_auto_assign, settings):
    from datetime import timedelta

    from rooms.desk.alerts import alerts_raise

    settings.QUEUE_ALERT_MINUTES = 10
    sofia = await supervisor()
    ana = await sync_to_async(AgentFactory)(username="ana")
    sofia_ws, ana_ws = await connect(sofia), await connect(ana)
    await receive_until(sofia_ws, lambda f: f["type"] == "snapshot")
    await receive_until(ana_ws, lambda f: f["type"] == "snapshot")
    room = await queued_room()
    await Room.objects.filter(pk=room.pk).aupdate(queued_at=timezone.now() - timedelta(minutes=11))

    assert await sync_to_async(alerts_raise)() == 1
    frame = await receive_until(sofia_ws, lambda f: f["type"] == "alert")
    assert (frame["alert"]["room"], frame["alert"]["cause"]) == (room.pk, "queue_wait")
    await ana_ws.send_json_to({"type": "available", "available": True, "id": "x"})
    seen = []
    await receive_until(ana_ws, lambda f: seen.append(f) or f.get("id") == "x")
    assert [f for f in seen if f["type"] == "alert"] == []
    await sofia_ws.send_json_to({"type": "overview", "id": "o"})
    overview = await receive_until(sofia_ws, lambda f: f.get("id") == "o")
    assert [a["room"] for a in overview["alerts"]] == [room.pk]
    await sofia_ws.disconnect()
    await ana_ws.disconnect()


async def test_a_supervisor_removed_from_the_group_loses_the_powers_at_once(
    fake_vendors, no_auto_assign
):
    from django.contrib.auth.models import Group

    sofia = await supervisor()
    room = await queued_room()
    ana = await sync_to_async(AgentFactory)(username="ana")
    ana_ws, sofia_ws = await connect(ana), await connect(sofia)
    await receive_until(ana_ws, lambda f: f["type"] == "snapshot")
    await receive_until(sofia_ws, lambda f: f["type"] == "snapshot")
    await ana_ws.send_json_to({"type": "take", "room": room.pk})
    await receive_until(ana_ws, lambda f: f["type"] == "room")

    group = await Group.objects.aget(name="supervisors")
    await sofia.groups.aremove(group)  # as an operator does in the admin
    fresh = await receive_until(sofia_ws, lambda f: f["type"] == "snapshot")
    assert fresh["supervisor"] is False
    reason = await ClosureReason.objects.acreate(title="Resuelto")
    for frame in (
        {"type": "overview"},
        {"type": "watch", "room": room.pk},
        {"type": "close", "room": room.pk, "reason": reason.pk},
    ):
        await sofia_ws.send_json_to(frame)
        refused = await receive_until(sofia_ws, lambda f: f["type"] == "error")
        assert refused["code"] in ("not_a_supervisor", "not_your_room"), frame
    assert (await Room.objects.aget(pk=room.pk)).status == Room.Status.ASSIGNED
    await ana_ws.disconnect()
    await sofia_ws.disconnect()


async def test_a_new_area_reaches_a_supervisors_queue_view_at_once(fake_vendors, no_auto_assign):
    from rooms.models import Area

    sofia = await supervisor()
    sofia_ws = await connect(sofia)
    await receive_until(sofia_ws, lambda f: f["type"] == "snapshot")
    level_2 = await Area.objects.acreate(name="Level 2", code="level-2")
    fresh = await receive_until(sofia_ws, lambda f: f["type"] == "snapshot")
    assert level_2.pk in fresh["queue_areas"]
    assert (
        await sync_to_async(webhook)(text_from(WA, "necesito un asesor de nivel 2 por favor"))
        == 200
    )
    frame = await receive_until(sofia_ws, lambda f: f["type"] == "queue" and f["queue"])
    assert frame["area"] == level_2.pk
    await sofia_ws.disconnect()
