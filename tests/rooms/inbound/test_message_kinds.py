"""What a customer's WhatsApp can send besides words, as the agent reads it: an edit updates the
stored text and says so, a deletion marks the message deleted (neither asks the bot anything), a
location keeps its coordinates, shared contacts are a card, a quoted reply carries the quote, a
click-to-WhatsApp ad's referral is noted."""

import pytest

from rooms.events import message_data
from rooms.models import Message, Room, UnusableItem
from tests.payloads import message, notification, text_from

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573005550001"


def _edit(original: str, text: str, *, timestamp: int | None = None) -> dict:
    body = {"original_message_id": original, "message": {"type": "text", "text": {"body": text}}}
    return notification(messages=[message(WA, kind="edit", body=body, timestamp=timestamp)])


def _revoke(original: str) -> dict:
    return notification(
        messages=[message(WA, kind="revoke", body={"original_message_id": original})]
    )


def _in_agents_room(post_webhook) -> Room:
    post_webhook(text_from(WA, "agente"))
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    return room


def test_an_edit_updates_the_text_and_is_not_answered(post_webhook, whatsapp, watson):
    """An edited message was answered "I can only read text"."""
    room = _in_agents_room(post_webhook)
    original = text_from(WA, "mi cuenta termina en 1234")
    post_webhook(original)
    wamid = original["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    sent, calls = len(whatsapp.sent), watson.message_calls

    edit = _edit(wamid, "mi cuenta termina en 4321")
    assert post_webhook(edit).status_code == 200
    assert post_webhook(edit).status_code == 200  # WhatsApp redelivers it

    assert (len(whatsapp.sent), watson.message_calls) == (sent, calls)
    stored = Message.objects.get(wa_message_id=wamid)
    assert stored.text == "mi cuenta termina en 4321"
    assert stored.edited_at is not None
    # What the customer first wrote stays in the message as WhatsApp sent it.
    assert stored.payload["text"]["body"] == "mi cuenta termina en 1234"
    # The edit is not a message of its own.
    assert Message.objects.filter(room=room, direction="in").count() == 2
    (event,) = room.events.filter(kind="message.edited")  # once, despite the redelivery
    assert event.data["id"] == stored.pk
    assert event.data["text"] == "mi cuenta termina en 4321"
    assert message_data(stored)["edited_at"] == stored.edited_at.isoformat()


def test_a_later_edit_wins_and_an_earlier_one_arriving_late_changes_nothing(post_webhook):
    _in_agents_room(post_webhook)
    original = text_from(WA, "uno")
    post_webhook(original)
    wamid = original["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    now = int(original["entry"][0]["changes"][0]["value"]["messages"][0]["timestamp"])
    post_webhook(_edit(wamid, "tres", timestamp=now + 20))
    post_webhook(_edit(wamid, "dos", timestamp=now + 10))
    assert Message.objects.get(wa_message_id=wamid).text == "tres"


def test_a_deleted_message_is_marked_deleted_for_the_agents(post_webhook, whatsapp, watson):
    room = _in_agents_room(post_webhook)
    original = text_from(WA, "me equivoqué de chat")
    post_webhook(original)
    wamid = original["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    sent = len(whatsapp.sent)

    post_webhook(_revoke(wamid))
    post_webhook(_revoke(wamid))

    assert len(whatsapp.sent) == sent
    stored = Message.objects.get(wa_message_id=wamid)
    assert stored.deleted_at is not None
    assert stored.text == "me equivoqué de chat"  # kept for the record; the console says deleted
    assert room.events.filter(kind="message.deleted").count() == 1
    assert message_data(stored)["deleted_at"] == stored.deleted_at.isoformat()


def test_an_edit_of_a_message_chatbridge_never_had_is_kept_as_unusable(post_webhook, whatsapp):
    response = post_webhook(_edit("wamid.unknown", "hola"))
    assert response.status_code == 200
    assert response.json()["skipped"] == 1
    assert UnusableItem.objects.get().reason == "changes a message chatbridge does not have"
    assert whatsapp.sent == []


def test_an_edit_cannot_touch_another_customers_message(post_webhook):
    other = text_from("573005559999", "mensaje de otra persona")
    post_webhook(other)
    wamid = other["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    post_webhook(_edit(wamid, "cambiado"))
    assert Message.objects.get(wa_message_id=wamid).text == "mensaje de otra persona"


def test_a_location_keeps_its_coordinates_and_a_map_link(post_webhook):
    _in_agents_room(post_webhook)
    body = {
        "latitude": 4.6097,
        "longitude": -74.0817,
        "name": "Sucursal Centro",
        "address": "Cra 7",
    }
    post_webhook(notification(messages=[message(WA, kind="location", body=body)]))
    stored = Message.objects.get(type="location")
    data = message_data(stored)
    assert stored.text == "Sucursal Centro — Cra 7"
    assert data["location"]["latitude"] == 4.6097
    assert data["location"]["longitude"] == -74.0817
    assert "mlat=4.6097&mlon=-74.0817" in data["location"]["map_url"]


def test_shared_contacts_are_a_card(post_webhook):
    _in_agents_room(post_webhook)
    item = message(WA, kind="contacts", body=None)
    item["contacts"] = [
        {
            "name": {"formatted_name": "Laura Gómez", "first_name": "Laura"},
            "phones": [{"phone": "+57 300 111 2222", "wa_id": "573001112222", "type": "CELL"}],
            "emails": [{"email": "laura@example.com"}],
        }
    ]
    post_webhook(notification(messages=[item]))
    stored = Message.objects.get(type="contacts")
    assert stored.text == "Laura Gómez"
    assert message_data(stored)["contacts"] == [
        {"name": "Laura Gómez", "phones": ["+57 300 111 2222"], "emails": ["laura@example.com"]}
    ]


def test_a_reply_carries_the_message_it_quotes(post_webhook):
    room = _in_agents_room(post_webhook)
    first = text_from(WA, "¿me ayudan con el extracto?")
    post_webhook(first)
    wamid = first["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    reply = message(WA, "este de aquí")
    reply["context"] = {"from": "15550000000", "id": wamid}
    post_webhook(notification(messages=[reply]))
    stored = Message.objects.get(text="este de aquí")
    quoted = Message.objects.get(wa_message_id=wamid)
    assert stored.quoted == {
        "id": quoted.pk,
        "author": "customer",
        "type": "text",
        "text": "¿me ayudan con el extracto?",
    }
    assert room.events.filter(kind="message.new").latest("seq").data["quoted"] == stored.quoted


def test_an_ad_referral_is_noted(post_webhook):
    _in_agents_room(post_webhook)
    item = message(WA, "quiero la tarjeta")
    item["referral"] = {
        "source_url": "https://fb.me/ad",
        "source_type": "ad",
        "source_id": "120",
        "headline": "Tarjeta sin cuota",
        "body": "Pídela hoy",
        "ctwa_clid": "x",
    }
    post_webhook(notification(messages=[item]))
    data = message_data(Message.objects.get(text="quiero la tarjeta"))
    assert data["referral"] == {
        "headline": "Tarjeta sin cuota",
        "body": "Pídela hoy",
        "source_url": "https://fb.me/ad",
        "source_type": "ad",
    }


def test_a_plain_text_carries_none_of_the_extras(post_webhook):
    post_webhook(text_from(WA, "hola"))
    data = message_data(Message.objects.get(direction="in"))
    assert set(data) == {
        "id",
        "direction",
        "author",
        "agent",
        "type",
        "text",
        "status",
        "error_code",
        "error_detail",
        "at",
    }
