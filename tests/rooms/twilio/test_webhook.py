"""Twilio's webhook: the signature over the public URL (behind the proxy, with and without the
port), MessageSid as the idempotency key, the order of a customer's messages, what each kind of
message is stored as, and the database down."""

import os
import threading
import time
from urllib.parse import urlencode

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection, connections
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chatbridge.fakes.twilio import inbound_form, sign
from rooms.models import Message, Room, UnusableItem
from rooms.providers.twilio import notification_from_form, signature_matches, twilio_signature
from rooms.whatsapp.webhook import MediaRef
from tests.payloads import twilio_post
from tests.servers import AppProcess, TcpProxy, database_url, wait_until
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573001234567"
PUBLIC = "https://chat.bank.example"


def test_twilio_signature_matches_twilios_published_example():
    # Twilio's own example (its libraries' tests): token 12345, this URL, these parameters.
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {
        "CallSid": ["CA1234567890ABCDE"],
        "Caller": ["+14158675309"],
        "Digits": ["1234"],
        "From": ["+14158675309"],
        "To": ["+18005551212"],
    }
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    given = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    assert signature_matches(auth_token="12345", url=url, params=params, given=given)
    tampered = {**params, "Digits": ["9999"]}
    assert not signature_matches(auth_token="12345", url=url, params=tampered, given=given)
    assert not signature_matches(auth_token="12345", url=url + "&x=1", params=params, given=given)


def test_a_signed_message_is_stored_and_answered_through_twilio(client, twilio, whatsapp, settings):
    response = twilio_post(client, inbound_form(wa_id=WA, text="hola", name="Ana"))

    assert response.status_code == 200
    assert response["Content-Type"] == "text/xml"
    assert response.content == b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
    customer = Customer.objects.get()
    assert (customer.provider, customer.uid, customer.wa_id, customer.name) == (
        "twilio",
        WA,
        WA,
        "Ana",
    )
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert (inbound.type, inbound.text) == ("text", "hola")
    assert inbound.wa_message_id.startswith("SM")
    (sent,) = twilio.sent_to(WA)
    assert sent["text"].startswith("¡Hola!")
    reply = Message.objects.get(direction=Message.Direction.OUTBOUND)
    assert (reply.status, reply.wa_message_id) == (Message.Status.SENT, sent["id"])
    assert sent["form"]["From"] == settings.TWILIO_WHATSAPP_FROM
    assert sent["form"]["To"] == f"whatsapp:+{WA}"
    callback = f"{settings.TWILIO_WEBHOOK_BASE_URL}/twilio/status?ref=chatbridge:{reply.pk}"
    assert sent["form"]["StatusCallback"] == callback
    assert whatsapp.sent == []  # nothing went through Meta


def _refusals(form: dict[str, str], settings) -> list[dict[str, str]]:
    url = f"{settings.TWILIO_WEBHOOK_BASE_URL}/twilio/whatsapp"
    return [
        {},  # no signature
        {"HTTP_X_TWILIO_SIGNATURE": sign("another-auth-token", url, form)},
        {"HTTP_X_TWILIO_SIGNATURE": sign(settings.TWILIO_AUTH_TOKEN, url, {**form, "Body": "x"})},
        {"HTTP_X_TWILIO_SIGNATURE": sign(settings.TWILIO_AUTH_TOKEN, url + "?a=1", form)},
        {"HTTP_X_TWILIO_SIGNATURE": "RSOYDt4T1cUTdK1PDd93/VVr8B8="},
        {"HTTP_X_TWILIO_SIGNATURE": "é" * 28},  # any byte reaches Django as latin-1
    ]


def test_twilio_webhook_rejects_a_bad_signature_and_stores_nothing(client, twilio, settings):
    form = inbound_form(wa_id=WA, text="hola")
    for headers in _refusals(form, settings):
        body = urlencode(form)
        response = client.post(
            "/twilio/whatsapp",
            data=body,
            content_type="application/x-www-form-urlencoded",
            **headers,
        )
        assert response.status_code == 403, headers
    assert Customer.objects.count() == 0
    assert Message.objects.count() == 0
    assert twilio.sent == []


def test_behind_the_proxy_the_signature_is_checked_against_the_public_url(client, twilio, settings):
    # nginx passes the request on to an internal name; Twilio signed the public address.
    settings.TWILIO_WEBHOOK_BASE_URL = PUBLIC
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "web1"]
    internal = {"HTTP_HOST": "web1:8000", "HTTP_X_FORWARDED_PROTO": "https"}

    signed_internally = inbound_form(wa_id=WA, text="¿me oyen?")
    refused = twilio_post(
        client,
        signed_internally,
        signed_url="http://web1:8000/twilio/whatsapp",
        **internal,
    )
    accepted = twilio_post(client, inbound_form(wa_id=WA, text="hola"), **internal)

    assert refused.status_code == 403
    assert accepted.status_code == 200
    texts = Message.objects.filter(direction=Message.Direction.INBOUND).values_list("text")
    assert list(texts) == [("hola",)]


@pytest.mark.parametrize(
    ("base_url", "signed_url", "status"),
    [
        (PUBLIC, f"{PUBLIC}/twilio/whatsapp", 200),
        (PUBLIC, "https://chat.bank.example:443/twilio/whatsapp", 200),  # port added
        ("https://chat.bank.example:8443", f"{PUBLIC}/twilio/whatsapp", 200),  # port dropped
        ("https://chat.bank.example:8443", "https://chat.bank.example:8443/twilio/whatsapp", 200),
        (PUBLIC, "https://chat.bank.example:444/twilio/whatsapp", 403),  # another port
        (PUBLIC, "http://chat.bank.example/twilio/whatsapp", 403),  # another scheme
    ],
)
def test_the_signature_holds_with_and_without_the_port(
    client, twilio, settings, base_url, signed_url, status
):
    settings.TWILIO_WEBHOOK_BASE_URL = base_url
    response = twilio_post(client, inbound_form(wa_id=WA, text="hola"), signed_url=signed_url)
    assert response.status_code == status
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == (status == 200)


def test_a_redelivered_message_sid_is_stored_once_and_answered_once(client, twilio, watson):
    form = inbound_form(wa_id=WA, text="hola", sid="SM0123456789abcdef0123456789abcdef")

    first, second = twilio_post(client, form), twilio_post(client, form)

    assert (first.status_code, second.status_code) == (200, 200)
    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert watson.message_calls == 1
    assert len(twilio.sent_to(WA)) == 1


def _post_at_once(forms: list[dict[str, str]]) -> list[int]:
    """POST every form from its own thread, released together; the status codes."""
    barrier = threading.Barrier(len(forms))
    codes = [0] * len(forms)

    def post(index: int, form: dict[str, str]) -> None:
        own_client = Client()
        barrier.wait()
        try:
            codes[index] = twilio_post(own_client, form).status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=pair) for pair in enumerate(forms)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return codes


def test_the_same_message_sid_delivered_twice_at_once_is_stored_once(twilio, watson):
    form = inbound_form(wa_id=WA, text="hola", sid="SMtwice0000000000000000000000000000")

    assert _post_at_once([form, form]) == [200, 200]

    assert Message.objects.filter(direction=Message.Direction.INBOUND).count() == 1
    assert Room.objects.count() == 1
    assert watson.message_calls == 1
    assert len(twilio.sent_to(WA)) == 1


def test_a_burst_from_one_twilio_customer_gets_one_room_and_ordered_replies(twilio, watson):
    forms = [inbound_form(wa_id=WA, text=f"mensaje {index}") for index in range(8)]

    assert _post_at_once(forms) == [200] * 8

    assert Customer.objects.count() == 1
    assert Room.objects.count() == 1
    assert watson.sessions_created == 1
    inbound = list(
        Message.objects.filter(direction="in").order_by("id").values_list("text", flat=True)
    )
    assert sorted(inbound) == sorted(f"mensaje {index}" for index in range(8))
    # Replies leave in the order the messages were stored, one per message.
    assert [item["text"] for item in twilio.sent_to(WA)] == [f"Dijiste: {t}" for t in inbound]


@pytest.mark.parametrize(
    ("extra", "stored"),
    [
        ({"Body": "hola"}, ("text", "hola")),
        ({"ButtonText": "Saldo", "ButtonPayload": "opt1:saldo"}, ("interactive", "Saldo")),
        (
            {"Latitude": "4.6097", "Longitude": "-74.0817", "Label": "Oficina", "Address": "Cra 7"},
            ("location", "Oficina — Cra 7"),
        ),
        (
            {"MediaUrl0": "https://api.twilio.com/m/1", "MediaContentType0": "image/jpeg"},
            ("image", "mi factura"),
        ),
        (
            {"MediaUrl0": "https://api.twilio.com/m/2", "MediaContentType0": "audio/ogg"},
            ("audio", "mi factura"),
        ),
        (
            {"MediaUrl0": "https://api.twilio.com/m/3", "MediaContentType0": "application/pdf"},
            ("document", "mi factura"),
        ),
        (
            {"MediaUrl0": "https://api.twilio.com/m/4", "MediaContentType0": "image/webp"},
            ("sticker", "mi factura"),
        ),
        ({"Body": ""}, ("unsupported", "")),
    ],
    ids=["text", "button", "location", "image", "audio", "document", "sticker", "nothing"],
)
def test_each_kind_of_twilio_message_is_stored_as_its_type(client, twilio, extra, stored):
    body = "mi factura" if "MediaUrl0" in extra else ""
    form = inbound_form(wa_id=WA, text=body, **extra)

    assert twilio_post(client, form).status_code == 200

    message = Message.objects.get(direction=Message.Direction.INBOUND)
    assert (message.type, message.text) == stored
    assert message.payload == form


def test_a_twilio_file_is_named_by_its_media_url_for_the_download():
    url = "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
    form = inbound_form(wa_id=WA, MediaUrl0=url, MediaContentType0="image/jpeg")

    (message,) = notification_from_form(form).messages

    assert message.media == MediaRef(ref=url, mime_type="image/jpeg", filename="", sha256="")
    assert message.provider == "twilio"


def test_a_form_chatbridge_cannot_use_is_kept_and_acknowledged(client, twilio):
    form = inbound_form(wa_id=WA, text="hola")
    del form["MessageSid"]
    form["From"] = form["WaId"] = "not-a-number"

    first, again = twilio_post(client, form), twilio_post(client, form)

    assert (first.status_code, again.status_code) == (200, 200)
    kept = UnusableItem.objects.get()
    assert (kept.kind, kept.payload, kept.wa_message_id) == ("message", form, "")
    assert kept.reason == "the sender is not a WhatsApp number"
    assert Message.objects.count() == 0


def test_a_body_that_is_not_a_form_is_refused(client, settings):
    url = f"{settings.TWILIO_WEBHOOK_BASE_URL}/twilio/whatsapp"
    response = client.post(
        "/twilio/whatsapp",
        data="{}",
        content_type="application/json",
        HTTP_X_TWILIO_SIGNATURE=sign(settings.TWILIO_AUTH_TOKEN, url, {}),
    )
    assert response.status_code == 400
    assert Message.objects.count() == 0


def test_without_an_auth_token_twilio_is_off(client, settings):
    settings.TWILIO_AUTH_TOKEN = ""
    # An empty key would let anyone sign: nothing is accepted at all.
    response = twilio_post(client, inbound_form(wa_id=WA, text="hola"), token="")
    assert response.status_code == 404
    assert Message.objects.count() == 0


@pytest.fixture
def proxied_server(fake_vendors, fake_twilio):
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432)).start()
    server = AppProcess.daphne(
        DATABASE_URL=database_url(port=proxy.port), DATABASE_POOL_TIMEOUT="1"
    )
    server.env["TWILIO_WEBHOOK_BASE_URL"] = server.url
    yield server.start(), proxy
    server.stop()
    proxy.cut()


def _post_to(server: AppProcess, form: dict[str, str]) -> requests.Response:
    url = f"{server.url}/twilio/whatsapp"
    signature = sign(django_settings.TWILIO_AUTH_TOKEN, url, form)
    return requests.post(url, data=form, headers={"X-Twilio-Signature": signature}, timeout=30)


def test_postgresql_unreachable_answers_503_then_the_redelivery_is_stored_once(
    proxied_server, twilio, record_fault
):
    server, proxy = proxied_server
    assert _post_to(server, inbound_form(wa_id=WA, text="hola")).status_code == 200

    proxy.cut()
    during = inbound_form(wa_id=WA, text="¿siguen ahí?", sid="SMoutage000000000000000000000000000")
    started = time.perf_counter()
    refused = _post_to(server, during)
    waited = time.perf_counter() - started

    assert refused.status_code == 503
    assert not Message.objects.filter(wa_message_id=during["MessageSid"]).exists()

    proxy.start()
    wait_until(
        lambda: requests.get(f"{server.url}/readyz", timeout=10).status_code == 200,
        timeout=20,
        what="ready again",
    )
    assert [_post_to(server, during).status_code for _ in range(2)] == [200, 200]
    assert Message.objects.filter(wa_message_id=during["MessageSid"]).count() == 1
    assert [m["text"] for m in twilio.sent_to(WA)].count("Dijiste: ¿siguen ahí?") == 1
    record_fault(
        "PostgreSQL unreachable during a Twilio webhook (TCP relay cut)",
        done="Twilio webhook during the outage, then the same MessageSid twice",
        held="503, nothing stored; then stored and answered once",
        figures=f"503 answered in {waited * 1000:.0f} ms",
    )


def test_an_oversized_twilio_form_is_refused(client, settings):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    response = twilio_post(client, inbound_form(wa_id=WA, text="x" * 4096))
    assert response.status_code == 413
    assert Message.objects.count() == 0


_FIELDS = [
    "MessageSid",
    "From",
    "WaId",
    "Body",
    "ProfileName",
    "MessageStatus",
    "ErrorCode",
    "MediaUrl0",
    "MediaContentType0",
    "Latitude",
    "Longitude",
    "ButtonText",
]
_VALUES = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["SM1", "whatsapp:+573001234567", "573001234567", "failed", "read", "²"]),
)
_FORMS = st.dictionaries(
    st.one_of(st.sampled_from(_FIELDS), st.text(min_size=1, max_size=12)),
    _VALUES,
    min_size=1,
    max_size=8,
)


@hypothesis_settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(form=_FORMS)
def test_a_signed_twilio_form_of_any_shape_is_answered_never_an_error(twilio, form):
    # Twilio sends what it sends: whatever the form holds, it is used or kept, never a 500.
    response = twilio_post(Client(), form)
    assert response.status_code == 200, response.content[:200]
