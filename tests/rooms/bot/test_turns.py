"""The bot's turn, end to end through the webhook: what the customer receives, what is stored."""

import pytest
from django.utils import timezone

from rooms.models import Message, Room
from tests.factories import AgentFactory
from tests.payloads import interactive_reply, message, notification, text_from
from users.models import AgentProfile
from watson.models import WatsonSession

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573001234567"


def message_requests(watson) -> list[dict]:
    return [r for r in watson.requests if r["path"].endswith("/message")]


def test_text_goes_to_watson_and_the_reply_comes_back(post_webhook, whatsapp, watson):
    assert post_webhook(text_from(WA, "hola")).status_code == 200

    (reply,) = whatsapp.sent
    # Watson's two text items arrive as one WhatsApp message.
    assert (
        reply["text"]
        == "¡Hola! Soy el asistente virtual de chatbridge.\n\n¿En qué te puedo ayudar?"
    )
    assert reply["to"] == WA
    stored = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert (stored.author, stored.status, stored.wa_message_id) == ("bot", "sent", reply["id"])
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert inbound.handled_at is not None
    room = Room.objects.get()
    assert room.status == Room.Status.BOT
    session = WatsonSession.objects.get(room=room)
    (call,) = message_requests(watson)
    assert f"/sessions/{session.session_id}/message" in call["path"]
    assert call["query"]["version"] == "2024-08-25"
    # A stable, non-phone user id: one billable user per customer.
    assert call["json"]["user_id"] == str(room.customer.public_id)


def test_text_sent_to_watson_is_sanitised(post_webhook, watson):
    post_webhook(text_from(WA, "línea uno\r\nlínea\tdos\x07 \u200f شكرا"))
    (call,) = message_requests(watson)
    assert call["json"]["input"]["text"] == "línea uno línea dos \u200f شكرا"
    assert Message.objects.get(direction="in").text == "línea uno\r\nlínea\tdos\x07 \u200f شكرا"


def test_options_become_buttons_a_list_or_numbered_text(post_webhook, whatsapp):
    post_webhook(text_from(WA, "opciones"))
    post_webhook(text_from(WA, "lista"))
    post_webhook(text_from(WA, "muchas"))

    buttons, listing, numbered = whatsapp.sent[1:4]
    assert whatsapp.sent[0]["text"] == "Estas son las opciones:"
    interactive = buttons["body"]["interactive"]
    assert interactive["type"] == "button"
    assert [b["reply"]["title"] for b in interactive["action"]["buttons"]] == [
        "Saldo",
        "Tarjetas",
        "Créditos",
    ]
    assert listing["body"]["interactive"]["type"] == "list"
    assert len(listing["body"]["interactive"]["action"]["sections"][0]["rows"]) == 6
    assert numbered["type"] == "text"
    assert "12. Opción 12" in numbered["body"]["text"]["body"]


def test_an_interactive_reply_sends_the_options_value_to_watson(post_webhook, watson):
    """Watson's option carries the value to send back; the label was sent instead."""
    post_webhook(notification(messages=[interactive_reply(WA, "Tarjetas", "opt2:tarjetas")]))
    (call,) = message_requests(watson)
    assert call["json"]["input"]["text"] == "tarjetas"
    stored = Message.objects.get(direction="in")
    assert (stored.type, stored.text) == (Message.Type.INTERACTIVE, "Tarjetas")  # as seen


def test_a_typed_number_answers_the_numbered_options(post_webhook, whatsapp, watson):
    post_webhook(text_from(WA, "muchas"))  # 12 options: numbered text
    post_webhook(text_from(WA, "12"))
    post_webhook(text_from(WA, "13"))  # no such option: the text itself
    inputs = [call["json"]["input"]["text"] for call in message_requests(watson)]
    assert inputs == ["muchas", "opción 12", "13"]


def test_connect_to_agent_queues_the_room_with_the_note(post_webhook, whatsapp):
    post_webhook(text_from(WA, "quiero hablar con un agente por favor ya"))

    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    assert room.queued_at is not None
    assert room.handoff_note == "El cliente pidió hablar con un asesor."
    texts = [m["text"] for m in whatsapp.sent]
    # No agent account exists: the assistant's "unavailable" text.
    assert texts == [
        "Te comunico con un asesor.",
        "En este momento no hay asesores disponibles; te atenderemos apenas se conecte uno.",
    ]


def test_connect_to_agent_says_available_when_an_agent_exists(post_webhook, whatsapp):
    agent = AgentFactory(username="agente1")
    AgentProfile.objects.filter(user=agent).update(last_seen_at=timezone.now())  # online, free
    post_webhook(text_from(WA, "necesito un asesor humano para mi caso"))
    assert whatsapp.sent[-1]["text"] == "Un asesor te atenderá en breve."
    # Auto-assignment gave the room to the only free agent.
    room = Room.objects.get()
    assert (room.status, room.agent) == (Room.Status.ASSIGNED, agent)


@pytest.mark.parametrize("text", ["agente", "Asesor", "quiero un ágente", "AGENT please"])
def test_customer_can_ask_for_a_human_without_the_bot(post_webhook, whatsapp, watson, text):
    post_webhook(text_from(WA, text))
    assert Room.objects.get().status == Room.Status.QUEUED
    assert watson.message_calls == 0
    assert [m["text"] for m in whatsapp.sent] == [
        "Te comunico con un asesor. Por favor espera un momento."
    ]


def test_a_queued_room_stores_messages_without_calling_watson(post_webhook, whatsapp, watson):
    post_webhook(text_from(WA, "agente"))
    sent_before, calls_before = len(whatsapp.sent), watson.message_calls

    post_webhook(text_from(WA, "¿hay alguien?"))

    assert watson.message_calls == calls_before
    assert len(whatsapp.sent) == sent_before
    latest = Message.objects.filter(direction="in").latest("id")
    assert latest.text == "¿hay alguien?"
    assert latest.handled_at is not None
    assert latest.room.status == Room.Status.QUEUED


def test_non_text_input_gets_the_text_only_message(post_webhook, whatsapp, watson):
    audio = message(WA, kind="audio", body={"id": "1", "mime_type": "audio/ogg", "voice": True})
    location = message(
        WA, kind="location", body={"latitude": 4.6, "longitude": -74.1, "name": "Casa"}
    )
    post_webhook(notification(messages=[audio, location]))
    assert watson.message_calls == 0
    assert [m["text"] for m in whatsapp.sent] == [
        "Por ahora solo puedo leer mensajes de texto. ¿Me escribes tu consulta?"
    ] * 2
    assert sorted(Message.objects.filter(direction="in").values_list("type", flat=True)) == [
        "audio",
        "location",
    ]


def test_a_reaction_is_stored_and_not_answered(post_webhook, whatsapp):
    reaction = message(WA, kind="reaction", body={"message_id": "wamid.x", "emoji": "👍"})
    post_webhook(notification(messages=[reaction]))
    assert whatsapp.sent == []
    assert Message.objects.get().text == "👍"


def test_expired_watson_session_is_recreated_and_answered(
    post_webhook, whatsapp, watson, record_fault
):
    post_webhook(text_from(WA, "hola"))
    first = WatsonSession.objects.get().session_id
    watson.expire_all_sessions()

    post_webhook(text_from(WA, "sigo aquí"))

    assert whatsapp.sent[-1]["text"] == "Dijiste: sigo aquí"
    session = WatsonSession.objects.get()
    assert session.session_id != first
    assert watson.sessions_created == 2
    assert Room.objects.get().status == Room.Status.BOT
    record_fault(
        "Watson session expired (404 Invalid Session)",
        done="a message to a session Watson forgot",
        held="new session, the message sent once more, answered; room stays with the bot",
    )


@pytest.mark.parametrize("failure", ["error", "slow", "rate_limited"])
def test_watson_down_or_slow_ends_in_apology_and_queue(
    post_webhook, whatsapp, watson, failure, record_fault
):
    post_webhook(text_from(WA, "hola"))  # the session exists: the failure hits the message call
    calls = len(message_requests(watson))
    if failure == "error":
        watson.fail_next(500, {"error": "Internal Server Error", "code": 500})
    elif failure == "rate_limited":
        watson.fail_next(429, {"error": "Too Many Requests", "code": 429})
    else:
        watson.delay = 3.0  # WATSON_TIMEOUT is 2 s in the tests

    post_webhook(text_from(WA, "¿cuál es mi saldo?"))

    watson.delay = 0
    assert whatsapp.sent[-1]["text"] == (
        "Tenemos problemas técnicos en este momento. Un asesor continuará la conversación contigo."
    )
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    assert room.handoff_note.startswith("El asistente falló")
    assert len(message_requests(watson)) == calls + 1  # never retried into Watson
    record_fault(
        {
            "error": "Watson 500",
            "slow": "Watson slower than its timeout",
            "rate_limited": "Watson 429",
        }[failure],
        done="a customer message in a bot room",
        held="apology sent, room queued for agents, Watson called once (no retry)",
    )


def test_watson_unreachable_ends_in_apology_and_queue(
    post_webhook, whatsapp, monkeypatch, record_fault
):
    from watson.client import watson_client

    monkeypatch.setenv("ASSISTANT_URL", "http://127.0.0.1:9")  # nothing listens on port 9
    watson_client.cache_clear()
    try:
        post_webhook(text_from(WA, "hola"))
    finally:
        monkeypatch.undo()
        watson_client.cache_clear()
    assert whatsapp.sent[-1]["text"].startswith("Tenemos problemas técnicos")
    assert Room.objects.get().status == Room.Status.QUEUED
    record_fault(
        "Watson unreachable (connection refused)",
        done="a customer message in a bot room",
        held="apology sent, room queued for agents",
    )


def test_window_closed_on_send_is_recorded_and_handed_to_agents(
    post_webhook, whatsapp, watson, record_fault
):
    whatsapp.fail_with_code(131047, details="More than 24 hours have passed")
    post_webhook(text_from(WA, "hola"))

    reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, 131047)
    assert "24 hours" in reply.error_detail
    assert reply.wa_message_id is None
    # Permanent: one attempt only, and the room goes to a human.
    assert len([r for r in whatsapp.requests if r["path"].endswith("/messages")]) == 1
    assert Room.objects.get().status == Room.Status.QUEUED
    record_fault(
        "WhatsApp 131047 (24-hour window closed) on send",
        done="a bot reply refused with 131047",
        held="recorded with its code, not retried, room handed to agents (the agent sees it)",
    )


@pytest.mark.parametrize("code", [130429, 131056])
def test_rate_limits_on_send_are_retried_with_backoff(post_webhook, whatsapp, code):
    whatsapp.fail_with_code(code, http_status=429 if code == 130429 else 400, count=2)
    post_webhook(text_from(WA, "hola"))
    reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert reply.status == Message.Status.SENT
    assert len([r for r in whatsapp.requests if r["path"].endswith("/messages")]) == 3
    assert Room.objects.get().status == Room.Status.BOT


def test_a_closed_room_makes_way_for_a_new_one(post_webhook, whatsapp):
    from rooms.conversation.services import room_close

    post_webhook(text_from(WA, "hola"))
    first = Room.objects.get()
    room_close(room=first, reason="resuelto")

    post_webhook(text_from(WA, "hola otra vez"))

    second = Room.objects.exclude(pk=first.pk).get()
    assert second.status == Room.Status.BOT
    assert Message.objects.filter(room=first, direction="in").count() == 1
    assert Message.objects.get(room=second, direction="in").text == "hola otra vez"
    assert WatsonSession.objects.filter(room=second).exists()
