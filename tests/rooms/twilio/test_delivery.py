"""What reaches a Twilio customer: the Messages API through the fake, options as numbered text,
media by URL, 63016 and the bodies Twilio cannot carry recorded as failures, statuses moving
forward only, a status's `ref` settling a send whose answer was lost, no read marks."""

import pytest
import requests
from django.conf import settings as django_settings

from chatbridge.fakes.twilio import StatusCallbacks, inbound_form, sign
from rooms.delivery.services import SendOutcome, TurnTarget, outbound_claim, outbound_deliver
from rooms.desk.services import customer_read_mark
from rooms.models import Message, Room
from tests.factories import AgentFactory, CustomerFactory, OutboundFactory
from tests.payloads import twilio_post, twilio_status
from tests.servers import AppProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573001234567"


def _say(client, text: str, **extra: str) -> None:
    assert twilio_post(client, inbound_form(wa_id=WA, text=text, **extra)).status_code == 200


def test_options_reach_the_customer_as_numbered_text_and_a_number_picks_one(client, twilio):
    _say(client, "opciones")
    _say(client, "2")

    texts = [item["text"] for item in twilio.sent_to(WA)]
    assert texts == [
        "Estas son las opciones:",
        "Elige una opción\n1. Saldo\n2. Tarjetas\n3. Créditos",
        "Dijiste: tarjetas",  # Watson got the option's value, not the number
    ]


def test_a_list_goes_as_numbered_text_too(client, twilio):
    _say(client, "lista")
    (sent,) = twilio.sent_to(WA)
    lines = sent["text"].splitlines()
    assert lines[0] == "Elige un producto"
    assert lines[1:3] == ["1. Cuenta de ahorros", "2. Cuenta corriente"]
    assert len(lines) == 7


def test_watsons_image_goes_by_its_url(client, twilio):
    _say(client, "imagen")
    (sent,) = twilio.sent_to(WA)
    assert sent["form"]["MediaUrl"].startswith("https://")
    assert Message.objects.get(direction="out").status == Message.Status.SENT


def test_the_24_hour_window_closed_is_recorded_with_twilios_code(client, twilio):
    twilio.fail_with_code(63016)

    _say(client, "hola")

    reply = Message.objects.get(direction="out")
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, 63016)
    assert "outside the allowed window" in reply.error_detail
    # As for Meta's refusals: the room goes to a person.
    assert Room.objects.get().status == Room.Status.QUEUED
    assert twilio.sent == []


def _twilio_room_message(body: dict, *, status: str = Message.Status.PENDING) -> Message:
    customer = CustomerFactory(provider="twilio", uid=WA, wa_id=WA)
    room = Room.objects.create(customer=customer)
    return OutboundFactory(room=room, payload=body, status=status)


def _target() -> TurnTarget:
    return TurnTarget(provider="twilio", uid=WA, wa_id=WA, user_id="", watson_user_id="x")


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (
            {"type": "template", "template": {"name": "saldo", "language": {"code": "es"}}},
            "templates go through Twilio's Content API",
        ),
        ({"type": "image", "image": {"id": "1234567890"}}, "media by URL only"),
        ({"type": "reaction", "reaction": {"message_id": "SM1", "emoji": "👍"}}, "'reaction'"),
        ({"type": "text", "text": {"body": "x" * 1601}}, "1600 characters"),
    ],
    ids=["template", "media-by-id", "reaction", "too-long"],
)
def test_a_body_twilio_cannot_carry_fails_with_a_readable_detail(twilio, body, detail):
    stored = _twilio_room_message(body)
    message = outbound_claim(message_id=stored.pk)
    assert message is not None

    assert outbound_deliver(message, _target()) == SendOutcome.FAILED

    message.refresh_from_db()
    assert message.status == Message.Status.FAILED
    assert detail in message.error_detail
    assert twilio.requests == []  # refused before any call


def _sent_reply(client, twilio) -> Message:
    _say(client, "hola")
    return Message.objects.get(direction="out")


def test_twilio_statuses_move_forward_only_and_undelivered_fails_with_its_code(client, twilio):
    reply = _sent_reply(client, twilio)
    sid = reply.wa_message_id

    for name in ["read", "delivered", "sent", "queued"]:  # late, out of order
        assert (
            twilio_post(client, twilio_status(sid, name), path="/twilio/status").status_code == 200
        )
    reply.refresh_from_db()
    assert reply.status == Message.Status.READ

    failed = twilio_status(sid, "undelivered", error_code=63016)
    assert twilio_post(client, failed, path="/twilio/status").status_code == 200
    twilio_post(client, twilio_status(sid, "delivered"), path="/twilio/status")
    reply.refresh_from_db()
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, 63016)
    assert "24 hours" in reply.error_detail


def test_a_status_callback_with_a_bad_signature_changes_nothing(client, twilio):
    reply = _sent_reply(client, twilio)
    response = twilio_post(
        client, twilio_status(reply.wa_message_id, "read"), path="/twilio/status", token="wrong"
    )
    assert response.status_code == 403
    reply.refresh_from_db()
    assert reply.status == Message.Status.SENT


def test_a_status_carrying_our_ref_settles_a_send_whose_answer_was_lost(client, twilio, settings):
    settings.WHATSAPP_TIMEOUT = 0.5
    settings.WHATSAPP_SEND_ATTEMPTS = 1
    twilio.delay = 1.5  # Twilio takes the message, its answer comes too late

    _say(client, "hola")

    reply = Message.objects.get(direction="out")
    assert (reply.status, reply.wa_message_id) == (Message.Status.SENDING, None)
    twilio.wait_for_sent(1)
    sid = twilio.sent[0]["id"]
    callback = twilio.sent[0]["form"]["StatusCallback"]
    assert callback.endswith(f"/twilio/status?ref=chatbridge:{reply.pk}")

    path = callback.removeprefix(settings.TWILIO_WEBHOOK_BASE_URL)
    response = twilio_post(client, twilio_status(sid, "sent"), path=path)

    assert response.status_code == 200
    reply.refresh_from_db()
    assert (reply.status, reply.wa_message_id) == (Message.Status.SENT, sid)
    assert outbound_claim(message_id=reply.pk) is None  # settled: never sent again


def test_a_ref_without_its_signature_settles_nothing(client, twilio, settings):
    stored = _twilio_room_message({"type": "text", "text": {"body": "hola"}})
    path = f"/twilio/status?ref=chatbridge:{stored.pk}"
    # Signed over the URL without the query: the ref is part of what Twilio signs.
    signed_url = f"{settings.TWILIO_WEBHOOK_BASE_URL}/twilio/status"
    response = twilio_post(client, twilio_status("SMx", "sent"), path=path, signed_url=signed_url)
    assert response.status_code == 403
    stored.refresh_from_db()
    assert stored.wa_message_id is None


def test_no_read_mark_goes_anywhere_for_a_twilio_customer(client, twilio, whatsapp, settings):
    settings.WHATSAPP_READ_MARKS = True
    settings.WHATSAPP_TYPING_INDICATOR = True

    _say(client, "hola")

    assert whatsapp.requests == []  # no read mark through Meta for Twilio's customer
    assert [request["method"] for request in twilio.requests] == ["POST"]  # the reply only
    inbound = Message.objects.get(direction="in")
    room = inbound.room
    agent = AgentFactory()
    Room.objects.filter(pk=room.pk).update(status=Room.Status.ASSIGNED, agent=agent)
    marked = customer_read_mark(room_id=room.pk, agent_id=agent.pk)
    assert marked == inbound.wa_message_id
    assert whatsapp.requests == []
    assert len(twilio.requests) == 1


@pytest.fixture
def server(fake_vendors, fake_twilio):
    process = AppProcess.daphne(WHATSAPP_TIMEOUT="1", WHATSAPP_SEND_ATTEMPTS="1")
    process.env["TWILIO_WEBHOOK_BASE_URL"] = process.url
    yield process.start()
    process.stop()


def _post_to(server: AppProcess, form: dict[str, str]) -> requests.Response:
    url = f"{server.url}/twilio/whatsapp"
    signature = sign(django_settings.TWILIO_AUTH_TOKEN, url, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=30)


def test_the_fakes_signed_callbacks_tick_the_reply_to_read(server, twilio):
    twilio.statuses = StatusCallbacks(read_after=0.1)

    assert _post_to(server, inbound_form(wa_id=WA, text="hola")).status_code == 200

    reply = wait_until(
        lambda: Message.objects.filter(direction="out", status=Message.Status.READ).first(),
        timeout=20,
        what="the reply read",
    )
    sid = twilio.sent_to(WA)[0]["id"]
    assert reply.wa_message_id == sid
    wait_until(lambda: len(twilio.callbacks) == 4, timeout=10, what="every callback answered")
    assert twilio.callbacks == [
        (sid, name, 200) for name in ["queued", "sent", "delivered", "read"]
    ]


def test_the_fakes_callbacks_settle_a_lost_answer_and_report_63016(server, twilio, record_fault):
    twilio.statuses = StatusCallbacks()
    twilio.undeliverable.append(63016)
    twilio.delay = 2  # chatbridge gives up after 1 s: the outcome is unknown

    assert _post_to(server, inbound_form(wa_id=WA, text="hola")).status_code == 200

    reply = wait_until(
        lambda: Message.objects.filter(direction="out", status=Message.Status.FAILED).first(),
        timeout=20,
        what="the callbacks settling the send",
    )
    (sent,) = twilio.sent_to(WA)  # sent once, never again
    assert (reply.wa_message_id, reply.error_code) == (sent["id"], 63016)
    assert "24 hours" in reply.error_detail
    record_fault(
        "Twilio's answer to a send lost (timeout), then the message undelivered (63016)",
        done="the fake Twilio answered after chatbridge's timeout; its callbacks carried the ref",
        held="sent once; the callbacks' ref settled it and recorded 63016",
    )


def test_an_error_code_that_is_not_ascii_digits_still_fails_the_message(client, twilio):
    reply = _sent_reply(client, twilio)
    failed = {**twilio_status(reply.wa_message_id, "failed"), "ErrorCode": "²"}  # "²".isdigit()
    assert twilio_post(client, failed, path="/twilio/status").status_code == 200
    reply.refresh_from_db()
    assert (reply.status, reply.error_code) == (Message.Status.FAILED, None)
