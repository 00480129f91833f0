"""Every response type of Assistant v2 reaches a WhatsApp customer as something they can use, and
no turn ends in silence unless Watson meant it (the fake Watson answers each by a keyword)."""

import pytest

from rooms.models import Message, Room
from tests.payloads import text_from

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573002220001"


def _sent_after(whatsapp, text: str, post_webhook) -> list[dict]:
    before = len(whatsapp.sent_to(WA))
    assert post_webhook(text_from(WA, text)).status_code == 200
    return whatsapp.sent_to(WA)[before:]


@pytest.mark.parametrize(
    ("keyword", "kind", "link"),
    [
        ("imagen", "image", "https://assets.example.com/chatbridge/tarjeta.png"),
        ("video", "video", "https://assets.example.com/chatbridge/app.mp4"),
        ("audio", "audio", "https://assets.example.com/chatbridge/bienvenida.ogg"),
    ],
)
def test_media_is_sent_as_media_by_its_link(post_webhook, whatsapp, keyword, kind, link):
    (sent,) = _sent_after(whatsapp, keyword, post_webhook)
    assert sent["type"] == kind
    assert sent["body"][kind]["link"] == link
    if kind == "audio":
        assert "caption" not in sent["body"][kind]  # WhatsApp takes none for audio
    else:
        assert sent["body"][kind]["caption"]
    stored = Message.objects.filter(direction="out").last()
    assert (stored.type, stored.status) == (kind, Message.Status.SENT)


def test_an_iframe_is_its_title_and_link(post_webhook, whatsapp):
    (sent,) = _sent_after(whatsapp, "iframe", post_webhook)
    assert sent["text"] == "Simulador\nhttps://assets.example.com/chatbridge/simulador"


def test_search_results_are_titles_bodies_and_links(post_webhook, whatsapp):
    (sent,) = _sent_after(whatsapp, "buscar", post_webhook)
    assert sent["text"] == (
        "Encontré esto:\n\n"
        "Bloquear tu tarjeta\nDesde la app, en Tarjetas, toca Bloquear.\n"
        "https://assets.example.com/chatbridge/ayuda/bloqueo\n\n"
        "Reponer tu tarjeta\nPide una nueva en la app."
    )


def test_a_channel_transfer_is_its_message_and_link(post_webhook, whatsapp):
    (sent,) = _sent_after(whatsapp, "canal", post_webhook)
    assert sent["text"] == "Sigamos en la web:\nhttps://assets.example.com/chatbridge/chat"


def test_suggestions_are_options(post_webhook, whatsapp):
    (sent,) = _sent_after(whatsapp, "sugerencias", post_webhook)
    buttons = sent["body"]["interactive"]["action"]["buttons"]
    assert [(b["reply"]["id"], b["reply"]["title"]) for b in buttons] == [
        ("opt1:saldo", "Saldo"),
        ("opt2:tarjetas", "Tarjetas"),
    ]


@pytest.mark.parametrize("keyword", ["personalizado", "desconocido", "nada"])
def test_nothing_readable_ends_in_the_fallback_never_in_silence(
    post_webhook, whatsapp, settings, keyword
):
    """user_defined, an unknown type, or no output at all: the customer was left unanswered."""
    sent = _sent_after(whatsapp, keyword, post_webhook)
    assert [m["text"] for m in sent] == [settings.BOT_FALLBACK_MESSAGE]
    assert Room.objects.get().status == Room.Status.BOT
    assert Message.objects.get(direction="in").handled_at is not None


def test_nothing_readable_can_go_to_a_person_instead(post_webhook, whatsapp, settings):
    settings.BOT_UNREADABLE_REPLY = "handoff"
    sent = _sent_after(whatsapp, "personalizado", post_webhook)
    assert [m["text"] for m in sent] == [settings.HANDOFF_MESSAGE]
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    assert "user_defined" in room.handoff_note


def test_a_pause_alone_is_deliberately_silent(post_webhook, whatsapp):
    assert _sent_after(whatsapp, "silencio", post_webhook) == []
    assert Message.objects.get(direction="in").handled_at is not None


def test_connect_to_agent_keeps_its_transfer_info_on_the_room(post_webhook):
    post_webhook(text_from(WA, "pásame con un humano por favor ya mismo"))
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    assert room.transfer_info == {"target": {}}
