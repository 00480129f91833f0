"""The webhook's doors: the handshake, the signature, bad input, batches, statuses."""

import json
import time

import pytest

from rooms.models import Message, Room
from tests.payloads import fixture, message, notification, sign, status, text_from
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)


def test_handshake_answers_the_bare_challenge(client):
    response = client.get(
        "/whatsapp/external",
        {
            "hub.mode": "subscribe",
            "hub.verify_token": "development-verify-token",
            "hub.challenge": "1158201444",
        },
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    assert response.content == b"1158201444"


@pytest.mark.parametrize(
    "params",
    [
        {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
        {
            "hub.mode": "unsubscribe",
            "hub.verify_token": "development-verify-token",
            "hub.challenge": "1",
        },
        {"hub.verify_token": "development-verify-token", "hub.challenge": "1"},
        {},
    ],
)
def test_handshake_refuses_anything_else(client, params):
    response = client.get("/whatsapp/external", params)
    assert response.status_code == 403
    assert b"1" not in response.content


def test_webhook_rejects_bad_signature_and_stores_nothing(client, whatsapp):
    body = json.dumps(text_from("573001234567")).encode()
    for signature in ["sha256=" + "0" * 64, sign(body, secret="another-secret"), "garbage", None]:
        headers = {"HTTP_X_HUB_SIGNATURE_256": signature} if signature else {}
        response = client.post(
            "/whatsapp/external", data=body, content_type="application/json", **headers
        )
        assert response.status_code == 401
    assert Customer.objects.count() == 0
    assert Message.objects.count() == 0
    assert whatsapp.sent == []


def test_webhook_signature_covers_the_raw_bytes(post_webhook, whatsapp):
    # Meta escapes non-ASCII as \uXXXX; a re-serialised body would hash differently.
    raw = json.dumps(fixture("whatsapp/text_message.json"), ensure_ascii=True).encode()
    assert post_webhook(raw).status_code == 200
    stored = Message.objects.get(direction=Message.Direction.INBOUND)
    assert stored.text == "¿Viene en otro color? ñandú 😀"
    assert Customer.objects.get().user_id == "US.13491208655302741918"


@pytest.mark.parametrize(
    ("body", "status_code"),
    [
        (b"{not json", 400),
        (b"\xff\xfe", 400),
        (json.dumps({"object": "page", "entry": []}).encode(), 400),
        (json.dumps([1, 2]).encode(), 400),
        (json.dumps({"object": "whatsapp_business_account", "entry": "x"}).encode(), 400),
        (
            json.dumps(
                notification(messages=[{"from": "573001234567", "type": "text", "timestamp": "1"}])
            ).encode(),
            400,
        ),
        (
            json.dumps(
                notification(
                    messages=[message("573001234567", timestamp=1) | {"timestamp": "soon"}]
                )
            ).encode(),
            400,
        ),
    ],
)
def test_webhook_refuses_what_is_not_a_whatsapp_notification(post_webhook, body, status_code):
    response = post_webhook(body)
    assert response.status_code == status_code
    assert "error" in response.json()
    assert Message.objects.count() == 0


def test_webhook_refuses_a_half_valid_batch_whole(post_webhook):
    good = message("573001234567", "hola")
    bad = {"from": "573001234567", "id": "wamid.x", "type": "text"}  # no timestamp
    response = post_webhook(notification(messages=[good, bad]))
    assert response.status_code == 400
    assert Message.objects.count() == 0
    assert Room.objects.count() == 0


def test_webhook_refuses_an_oversized_body(post_webhook, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    big = text_from("573001234567", "x" * 4096)
    response = post_webhook(big)
    assert response.status_code == 413
    assert Message.objects.count() == 0


def test_webhook_handles_every_item_of_a_batch(post_webhook, whatsapp, watson):
    response = post_webhook(fixture("whatsapp/batch.json"))

    assert response.status_code == 200
    assert response.json() == {"stored": 3, "duplicates": 0, "statuses": 0}
    ana, beto = Customer.objects.order_by("uid")
    assert (ana.name, beto.name) == ("Ana", "Beto")
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 3
    image = Message.objects.get(wa_message_id="wamid.batch-3")
    assert (image.type, image.text) == ("image", "mi factura")
    # Every message was answered: a greeting, options, and "text only" for the image.
    to_ana = [item["text"] for item in whatsapp.sent_to("573001110001")]
    assert to_ana[0].startswith("¡Hola!")
    assert to_ana[1].startswith("Por ahora solo puedo leer")
    to_beto = whatsapp.sent_to("573001110002")
    assert [item["type"] for item in to_beto] == ["text", "interactive"]
    assert watson.message_calls == 2  # the image never went to Watson


def test_webhook_answers_a_customer_known_only_by_business_scoped_id(post_webhook, whatsapp):
    assert post_webhook(fixture("whatsapp/bsuid_only.json")).status_code == 200
    customer = Customer.objects.get()
    assert (customer.uid, customer.wa_id) == ("CO.77123456789012345678", "")
    (reply,) = whatsapp.sent
    assert reply["body"]["recipient"] == "CO.77123456789012345678"
    assert "to" not in reply["body"]


def test_status_moves_forward_only_and_failed_keeps_its_code(post_webhook, whatsapp):
    post_webhook(text_from("573001234567", "hola"))
    reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert reply.status == Message.Status.SENT
    wamid = reply.wa_message_id

    post_webhook(notification(statuses=[status(wamid, "read")]))
    post_webhook(notification(statuses=[status(wamid, "delivered")]))  # late, out of order
    post_webhook(notification(statuses=[status(wamid, "sent")]))
    reply.refresh_from_db()
    assert reply.status == Message.Status.READ

    post_webhook(notification(statuses=[status(wamid, "failed", error_code=131047)]))
    post_webhook(notification(statuses=[status(wamid, "read")]))
    reply.refresh_from_db()
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, 131047)
    assert "24 hours" in reply.error_detail


def test_status_for_an_unknown_message_is_acknowledged(post_webhook):
    response = post_webhook(notification(statuses=[status("wamid.not-ours", "delivered")]))
    assert response.status_code == 200
    assert response.json()["statuses"] == 0


def test_redelivered_message_is_processed_once(post_webhook, whatsapp, watson):
    payload = text_from("573001234567", "hola", wamid="wamid.same")
    first, second = post_webhook(payload), post_webhook(payload)
    assert first.json()["stored"] == 1
    assert second.status_code == 200
    assert second.json() == {"stored": 0, "duplicates": 1, "statuses": 0}
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert watson.message_calls == 1
    assert len(whatsapp.sent) == 1


def test_a_message_older_than_the_window_is_stored_and_handed_to_agents(
    post_webhook, whatsapp, watson, settings
):
    settings.WEBHOOK_MAX_AGE_SECONDS = 3600
    old = int(time.time()) - 3 * 3600  # held back by an outage, or replayed
    response = post_webhook(text_from("573001234567", "¿mi saldo?", timestamp=old))

    assert response.status_code == 200
    stored = Message.objects.get(direction=Message.Direction.INBOUND)
    assert stored.text == "¿mi saldo?"
    assert stored.handled_at is not None
    assert watson.message_calls == 0  # the bot does not answer as if it were now
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    assert room.handoff_note == "Mensaje recibido con 180 min de retraso."
