"""Several WhatsApp numbers on one installation: each registered with its token and app secret
(named, read from the environment), its area and its assistant; routed by the webhook's
metadata.phone_number_id, answered from the number written to; unknown numbers kept and
flagged, never answered."""

import json

import pytest
from django.conf import settings

import rooms.lines
from chatbridge.cache import active_room_cache_key, cache_get
from rooms.desk.assignment import room_take
from rooms.desk.selectors import agent_snapshot
from rooms.desk.services import agent_message_send
from rooms.media.tasks import media_fetches_wait
from rooms.models import Area, Message, Room, UnusableItem, WhatsAppNumber
from tests.factories import AgentFactory
from tests.payloads import message, notification, sign, signed_post, text_from

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573006660001"
CARDS = "100000000000777"
CARDS_TOKEN, CARDS_SECRET = "cards-token-1", "cards-app-secret"


@pytest.fixture
def cards(monkeypatch, settings, whatsapp) -> WhatsAppNumber:
    """The cards line: its own number, app, area and assistant."""
    settings.AUTO_ASSIGN = False
    whatsapp.number_add(CARDS, CARDS_TOKEN)
    monkeypatch.setenv("WHATSAPP_TOKEN_CARDS", CARDS_TOKEN)
    monkeypatch.setenv("WHATSAPP_SECRET_CARDS", CARDS_SECRET)
    area = Area.objects.create(name="Tarjetas", code="cards")
    return WhatsAppNumber.objects.create(
        phone_number_id=CARDS,
        name="Tarjetas",
        token_env="WHATSAPP_TOKEN_CARDS",
        app_secret_env="WHATSAPP_SECRET_CARDS",
        area=area,
        watson_assistant_id="cards-assistant",
        watson_environment_id="cards-live",
    )


def to_number(payload: dict, phone_number_id: str) -> dict:
    for entry in payload["entry"]:
        for change in entry["changes"]:
            change["value"]["metadata"]["phone_number_id"] = phone_number_id
    return payload


def post(client, payload: dict, *, secret: str):
    body = json.dumps(payload).encode()
    return signed_post(client, body, HTTP_X_HUB_SIGNATURE_256=sign(body, secret))


def sends(whatsapp) -> list[dict]:
    """The fake's message sends (read marks and uploads aside), with the token each used."""
    return [
        {**request["json"], "path": request["path"], "auth": request["headers"]["authorization"]}
        for request in whatsapp.requests
        if request["path"].endswith("/messages") and request["json"].get("type") != "read"
    ]


def test_a_message_to_a_registered_number_is_answered_from_it(client, cards, whatsapp, watson):
    response = post(client, to_number(text_from(WA, "hola"), CARDS), secret=CARDS_SECRET)

    assert response.json()["stored"] == 1
    room = Room.objects.get(customer__uid=WA)
    assert room.line == CARDS
    reply = sends(whatsapp)[-1]
    assert reply["path"].endswith(f"/{CARDS}/messages")
    assert reply["auth"] == f"Bearer {CARDS_TOKEN}"
    # Its own assistant: the session and the message went to cards-assistant/cards-live.
    paths = [request["path"] for request in watson.requests]
    assert paths and all("/assistants/cards-assistant/environments/cards-live/" in p for p in paths)


def test_a_customer_on_two_numbers_has_two_rooms(client, cards, whatsapp):
    post(client, text_from(WA, "hola"), secret=settings.WHATSAPP_APP_SECRET)
    post(client, to_number(text_from(WA, "hola tarjetas"), CARDS), secret=CARDS_SECRET)
    post(client, text_from(WA, "sigo aquí"), secret=settings.WHATSAPP_APP_SECRET)

    main, line = Room.objects.filter(customer__uid=WA).order_by("line")
    assert (main.line, main.status, line.line, line.status) == ("", "bot", CARDS, "bot")
    assert [m.text for m in main.messages.filter(direction="in")] == ["hola", "sigo aquí"]
    assert [m.text for m in line.messages.filter(direction="in")] == ["hola tarjetas"]
    # One cache entry per number: each route is its own.
    assert cache_get(active_room_cache_key(provider="whatsapp", uid=WA))["id"] == main.pk
    assert (
        cache_get(active_room_cache_key(provider="whatsapp", uid=WA, line=CARDS))["id"] == line.pk
    )
    paths = [s["path"] for s in sends(whatsapp)]
    assert paths[-1].endswith(f"/{settings.WHATSAPP_PHONE_NUMBER_ID}/messages")
    assert paths[-2].endswith(f"/{CARDS}/messages")


def test_a_hand_off_enters_the_numbers_area_and_the_agent_answers_from_it(client, cards, whatsapp):
    post(client, to_number(text_from(WA, "agente"), CARDS), secret=CARDS_SECRET)
    room = Room.objects.get(customer__uid=WA)
    assert (room.status, room.area.code) == ("queued", "cards")

    ana = AgentFactory(username="ana")
    cards.area.agents.add(ana)
    room_take(room_id=room.pk, agent=ana)
    agent_message_send(room_id=room.pk, agent=ana, text="Hola, soy Ana de Tarjetas")

    reply = sends(whatsapp)[-1]
    assert reply["text"]["body"] == "Hola, soy Ana de Tarjetas"
    assert reply["path"].endswith(f"/{CARDS}/messages")
    assert reply["auth"] == f"Bearer {CARDS_TOKEN}"
    # Her console names the number the customer wrote to.
    snapshot = agent_snapshot(user=ana)
    assert snapshot["lines"] == {CARDS: "Tarjetas"}
    assert [r["line"] for r in snapshot["rooms"]] == [CARDS]


def test_an_unknown_number_is_kept_and_flagged_not_answered(client, whatsapp, watson):
    payload = to_number(text_from(WA, "hola", wamid="wamid.unknown-number"), "100000000000999")

    response = post(client, payload, secret=settings.WHATSAPP_APP_SECRET)

    assert response.status_code == 200
    assert response.json() == {"stored": 0, "duplicates": 0, "statuses": 0, "skipped": 1}
    item = UnusableItem.objects.get()
    assert item.wa_message_id == "wamid.unknown-number"
    assert "100000000000999" in item.reason and "does not serve" in item.reason
    assert item.payload["text"]["body"] == "hola"
    assert not Room.objects.exists()
    assert sends(whatsapp) == [] and watson.requests == []
    # Meta's redelivery keeps one row.
    post(client, payload, secret=settings.WHATSAPP_APP_SECRET)
    assert UnusableItem.objects.count() == 1


def test_a_number_signed_by_another_apps_secret_is_flagged(client, cards, whatsapp):
    """The main app's secret cannot speak for the cards app's number."""
    payload = to_number(text_from(WA, "hola"), CARDS)
    response = post(client, payload, secret=settings.WHATSAPP_APP_SECRET)
    assert response.json()["skipped"] == 1
    assert "signed by another app" in UnusableItem.objects.get().reason
    assert not Room.objects.exists()
    # A secret no number has: refused outright.
    assert post(client, payload, secret="nobody's secret").status_code == 401


def test_a_number_switched_off_or_without_its_variables_is_flagged(
    client, cards, whatsapp, monkeypatch
):
    cards.active = False
    cards.save()  # the registry's cache entry goes with the save
    payload = to_number(text_from(WA, "hola"), CARDS)
    assert post(client, payload, secret=CARDS_SECRET).status_code == 401  # its app is not served
    cards.active = True
    cards.save()
    monkeypatch.delenv("WHATSAPP_SECRET_CARDS")
    assert post(client, payload, secret=CARDS_SECRET).status_code == 401
    # Its token missing: it could not be answered, so it is not taken.
    monkeypatch.setenv("WHATSAPP_SECRET_CARDS", CARDS_SECRET)
    monkeypatch.delenv("WHATSAPP_TOKEN_CARDS")
    assert post(client, payload, secret=CARDS_SECRET).json()["skipped"] == 1
    assert "token is not set" in UnusableItem.objects.get().reason
    assert not Room.objects.exists()


def test_the_admin_says_whether_the_variables_are_set(admin_client, cards, monkeypatch):
    # A room's page names the number its customer wrote to.
    post(admin_client, to_number(text_from(WA, "hola"), CARDS), secret=CARDS_SECRET)
    room = Room.objects.get(customer__uid=WA)
    page = admin_client.get(f"/admin/rooms/room/{room.pk}/change/")
    assert f"Tarjetas ({CARDS})".encode() in page.content
    page = admin_client.get(f"/admin/rooms/whatsappnumber/{cards.pk}/change/")
    assert page.status_code == 200
    assert b"both set" in page.content
    assert CARDS_TOKEN.encode() not in page.content and CARDS_SECRET.encode() not in page.content
    monkeypatch.delenv("WHATSAPP_TOKEN_CARDS")
    page = admin_client.get(f"/admin/rooms/whatsappnumber/{cards.pk}/change/")
    assert b"missing: WHATSAPP_TOKEN_CARDS" in page.content
    # Rooms remember the number: it is switched off, never deleted.
    assert admin_client.post(f"/admin/rooms/whatsappnumber/{cards.pk}/delete/").status_code == 403


def test_the_main_numbers_messages_never_read_the_registry(client, cards, whatsapp, monkeypatch):
    """Its POSTs cost what they did before there were several numbers: no registry lookup."""

    def registry_read() -> None:
        raise AssertionError("the main number's POST read the registry")

    monkeypatch.setattr(rooms.lines, "lines", registry_read)
    response = post(client, text_from(WA, "hola"), secret=settings.WHATSAPP_APP_SECRET)
    assert response.json()["stored"] == 1
    assert Room.objects.get().line == ""
    assert sends(whatsapp)[-1]["path"].endswith(f"/{settings.WHATSAPP_PHONE_NUMBER_ID}/messages")


def test_a_change_without_metadata_is_the_main_numbers(client, whatsapp):
    payload = text_from(WA, "hola")
    del payload["entry"][0]["changes"][0]["value"]["metadata"]
    assert post(client, payload, secret=settings.WHATSAPP_APP_SECRET).json()["stored"] == 1
    assert Room.objects.get().line == ""


def test_media_from_a_registered_number_is_fetched_with_its_token(client, cards, whatsapp):
    media_id = whatsapp.media_add(b"\x89PNG\r\n\x1a\nfake", "image/png")
    image = {"id": media_id, "mime_type": "image/png"}
    payload = to_number(notification(messages=[message(WA, kind="image", body=image)]), CARDS)
    post(client, payload, secret=CARDS_SECRET)
    media_fetches_wait()

    assert Message.objects.get(media_id=media_id).media_status == "stored"
    fetches = [r for r in whatsapp.requests if r["path"].endswith(media_id)]
    assert fetches and all(
        r["headers"]["authorization"] == f"Bearer {CARDS_TOKEN}" for r in fetches
    )
