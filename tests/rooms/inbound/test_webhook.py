"""The webhook's doors: the handshake, the signature, bad input, batches, statuses."""

import json
import logging
import time

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from rooms.models import Message, Room, UnusableItem
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


@pytest.mark.parametrize("signature", ["sha256=\xe9", "sha256=" + "é" * 64, "sha256=\u263a"])
def test_webhook_non_ascii_signature_is_refused_not_an_error(client, signature, record_fault):
    # A header's bytes reach Django as latin-1: a comparison of str raised TypeError (500).
    body = json.dumps(text_from("573001234567")).encode()
    response = client.post(
        "/whatsapp/external",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature,
    )
    assert response.status_code == 401
    assert Message.objects.count() == 0
    record_fault(
        "Attack: non-ASCII bytes in X-Hub-Signature-256",
        done=f"unsigned POST with signature {signature[:12]!r}…",
        held="401, nothing stored, no 500 (was a 500 with a traceback)",
    )


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
        (json.dumps({"object": "whatsapp_business_account"}).encode(), 400),
        (b'{"object": "whatsapp_business_account", "entry": [], "x": NaN}', 400),
    ],
)
def test_webhook_refuses_what_is_not_a_whatsapp_notification(post_webhook, body, status_code):
    response = post_webhook(body)
    assert response.status_code == status_code
    assert "error" in response.json()
    assert Message.objects.count() == 0
    assert UnusableItem.objects.count() == 0


def test_webhook_keeps_a_system_notice_without_from_and_answers_the_rest(
    post_webhook, whatsapp, caplog
):
    # Meta's notice of a customer's new number comes without `from`: it used to refuse the batch.
    caplog.set_level(logging.INFO)
    payload = fixture("whatsapp/system_notice.json")

    response = post_webhook(payload)

    assert response.status_code == 200
    assert response.json() == {"stored": 1, "duplicates": 0, "statuses": 0, "skipped": 1}
    stored = Message.objects.get(direction=Message.Direction.INBOUND)
    assert (stored.wa_message_id, stored.text) == ("wamid.notice-batch-1", "hola")
    assert whatsapp.sent_to("573001110001")[0]["text"].startswith("¡Hola!")
    kept = UnusableItem.objects.get()
    notice = payload["entry"][0]["changes"][0]["value"]["messages"][1]
    assert (kept.kind, kept.wa_message_id, kept.payload) == (
        "message",
        "wamid.notice-batch-2",
        notice,
    )
    assert kept.reason == "message has neither from nor from_user_id"
    (warning,) = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert "wamid.notice-batch-2" in warning.getMessage()
    assert "neither from nor from_user_id" in warning.getMessage()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "changed from" not in logged and "573001110004" not in logged  # no text, no number

    replies = len(whatsapp.sent)
    again = post_webhook(payload)  # Meta redelivers

    assert again.status_code == 200
    assert again.json() == {"stored": 0, "duplicates": 1, "statuses": 0, "skipped": 1}
    assert UnusableItem.objects.count() == 1
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert len(whatsapp.sent) == replies


def test_webhook_keeps_a_status_of_an_unknown_kind_and_applies_the_rest(post_webhook, whatsapp):
    post_webhook(text_from("573001234567", "hola"))
    reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    payload = notification(
        statuses=[status(reply.wa_message_id, "deleted"), status(reply.wa_message_id, "read")]
    )

    response = post_webhook(payload)

    assert response.status_code == 200
    assert response.json() == {"stored": 0, "duplicates": 0, "statuses": 1, "skipped": 1}
    reply.refresh_from_db()
    assert reply.status == Message.Status.READ
    kept = UnusableItem.objects.get()
    assert (kept.kind, kept.wa_message_id) == ("status", reply.wa_message_id)
    assert kept.reason == "unknown status 'deleted'"
    assert post_webhook(payload).status_code == 200
    assert UnusableItem.objects.count() == 1


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ({"id": None}, "message id must be a non-empty string"),
        ({"timestamp": "soon"}, "invalid timestamp (str)"),
        ({"type": None}, "message type must be a non-empty string"),
    ],
    ids=["no-id", "bad-timestamp", "no-type"],
)
def test_webhook_keeps_a_broken_message_and_stores_the_one_beside_it(
    post_webhook, whatsapp, breakage, reason
):
    good = message("573001234567", "hola")
    bad = {
        key: value
        for key, value in (message("573001234567", "¿y esto?") | breakage).items()
        if value is not None
    }
    payload = notification(messages=[good, bad])

    response = post_webhook(payload)

    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert response.json()["skipped"] == 1
    assert Message.objects.get(direction=Message.Direction.INBOUND).wa_message_id == good["id"]
    assert len(whatsapp.sent_to("573001234567")) == 1
    kept = UnusableItem.objects.get()
    assert (kept.kind, kept.payload, kept.reason) == ("message", bad, reason)
    assert kept.wa_message_id == bad.get("id", "")
    # Without an id the item is known by its hash: a redelivery still keeps one row.
    assert post_webhook(payload).json()["duplicates"] == 1
    assert UnusableItem.objects.count() == 1


@pytest.mark.parametrize(
    ("breakage", "kind", "reason"),
    [
        (lambda payload: payload["entry"].append("x"), "entry", "entry must be an object"),
        (
            lambda payload: payload["entry"].append({"id": "1", "changes": {}}),
            "entry",
            "entry changes must be a list",
        ),
        (
            lambda payload: payload["entry"][0]["changes"].append({"field": "messages"}),
            "change",
            "change value must be an object",
        ),
        (
            lambda payload: payload["entry"][0]["changes"].append(
                {"field": "messages", "value": {"messages": {"id": "wamid.y"}}}
            ),
            "change",
            "messages must be a list",
        ),
    ],
    ids=["entry-not-object", "changes-not-list", "value-missing", "messages-not-list"],
)
def test_webhook_keeps_a_malformed_container_and_reads_the_rest(
    post_webhook, whatsapp, breakage, kind, reason
):
    payload = text_from("573001234567", "hola")
    breakage(payload)

    response = post_webhook(payload)

    assert response.status_code == 200
    assert (response.json()["stored"], response.json()["skipped"]) == (1, 1)
    assert len(whatsapp.sent_to("573001234567")) == 1
    kept = UnusableItem.objects.get()
    assert (kept.kind, kept.reason) == (kind, reason)


def test_webhook_ignores_malformed_contacts_and_stores_the_message(post_webhook):
    # Contacts only name the sender: without a readable one the message is still the customer's.
    payload = text_from("573001234567", "hola")
    payload["entry"][0]["changes"][0]["value"]["contacts"] = ["Ana", {"wa_id": 5}]

    response = post_webhook(payload)

    assert response.json()["stored"] == 1
    assert Customer.objects.get().uid == "573001234567"
    assert UnusableItem.objects.count() == 0


def test_webhook_without_skipped_items_sends_no_query_for_them(post_webhook):
    post_webhook(text_from("573001234567", "hola"))  # the returning customer: the fast path
    with CaptureQueriesContext(connection) as queries:
        response = post_webhook(text_from("573001234567", "¿y mi pedido?"))
    assert response.json()["skipped"] == 0
    assert not [query for query in queries if UnusableItem._meta.db_table in query["sql"]]


def test_webhook_refuses_an_oversized_body(post_webhook, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    big = text_from("573001234567", "x" * 4096)
    response = post_webhook(big)
    assert response.status_code == 413
    assert Message.objects.count() == 0


def test_webhook_handles_every_item_of_a_batch(post_webhook, whatsapp, watson):
    response = post_webhook(fixture("whatsapp/batch.json"))

    assert response.status_code == 200
    assert response.json() == {"stored": 3, "duplicates": 0, "statuses": 0, "skipped": 0}
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
    assert second.json() == {"stored": 0, "duplicates": 1, "statuses": 0, "skipped": 0}
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
