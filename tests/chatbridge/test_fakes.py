"""The fake vendors must honour the real contracts, so drive them over real HTTP.

Watson is exercised through the official SDK (what the bridge uses), WhatsApp through plain
``requests`` (what the bridge's Graph client boils down to). No Django involved: this module
starts its own fakes and overrides the suite's autouse fixtures, so it also runs with
``-p no:django`` and without PostgreSQL or Redis.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import requests
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import NoAuthAuthenticator
from ibm_watson import AssistantV2

from chatbridge.fakes import FakeWatson, FakeWhatsApp
from chatbridge.fakes.whatsapp import StatusWebhook

VERSION = "2024-08-25"
TOKEN = "test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# Same names as tests/conftest.py's autouse fixtures: these no-ops replace them in this module,
# which needs neither the database nor the cache nor the settings-configured fakes.
@pytest.fixture
def clean_state() -> None:
    return None


@pytest.fixture
def close_database_pool() -> None:
    return None


@pytest.fixture(scope="module")
def watson_server() -> Iterator[FakeWatson]:
    with FakeWatson() as fake:
        yield fake


@pytest.fixture(scope="module")
def whatsapp_server() -> Iterator[FakeWhatsApp]:
    with FakeWhatsApp(token=TOKEN) as fake:
        yield fake


# Servers are shared per module for speed; state is reset per test for isolation. These
# shadow conftest's `watson`/`whatsapp`, which need Django settings.
@pytest.fixture
def watson(watson_server: FakeWatson) -> FakeWatson:
    watson_server.reset()
    watson_server.session_idle_timeout = 300.0
    return watson_server


@pytest.fixture
def whatsapp(whatsapp_server: FakeWhatsApp) -> FakeWhatsApp:
    whatsapp_server.reset()
    return whatsapp_server


@pytest.fixture
def assistant(watson: FakeWatson) -> AssistantV2:
    client = AssistantV2(version=VERSION, authenticator=NoAuthAuthenticator())
    # A path prefix like a real instance URL: the fake must match from "/v2/" on.
    client.set_service_url(f"{watson.url}/instances/abc")
    return client


def _send(assistant: AssistantV2, session_id: str, text: str) -> dict:
    return assistant.message(
        "asst",
        "env",
        session_id,
        input={"message_type": "text", "text": text, "options": {"return_context": True}},
        user_id="573001112233",
    ).get_result()


def _text_body(to: str = "573001112233", text: str = "hola") -> dict:
    return {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": to,
        "type": "text",
        "text": {"body": text},
    }


def _post(
    fake: FakeWhatsApp, body: dict, headers: dict | None = None, timeout: float = 5
) -> requests.Response:
    return requests.post(
        f"{fake.url}/v23.0/123456/messages",
        json=body,
        headers=AUTH if headers is None else headers,
        timeout=timeout,
    )


# -- Watson ----------------------------------------------------------------------------------


def test_watson_session_and_greeting_through_sdk(
    watson: FakeWatson, assistant: AssistantV2
) -> None:
    created = assistant.create_session("asst", "env")
    assert created.get_status_code() == 201
    session_id = created.get_result()["session_id"]

    result = _send(assistant, session_id, " Hola ")

    assert [item["text"] for item in result["output"]["generic"]] == [
        "¡Hola! Soy el asistente virtual de chatbridge.",
        "¿En qué te puedo ayudar?",
    ]
    assert result["output"]["intents"][0]["intent"] == "greeting"
    assert result["user_id"] == "573001112233"
    assert result["context"]["global"]["session_id"] == session_id
    assert result["context"]["global"]["system"]["turn_count"] == 1
    assert watson.sessions_created == 1
    assert watson.wait_for_messages(1, timeout=1) == 1
    assert watson.requests[-1]["query"] == {"version": VERSION}
    assert assistant.delete_session("asst", "env", session_id).get_status_code() == 200


def test_watson_scripted_dialog(watson: FakeWatson, assistant: AssistantV2) -> None:
    session_id = assistant.create_session("asst", "env").get_result()["session_id"]

    menu = _send(assistant, session_id, "menú")["output"]["generic"]
    assert menu[0] == {"response_type": "text", "text": "Estas son las opciones:"}
    assert menu[1]["preference"] == "button"
    assert [o["label"] for o in menu[1]["options"]] == ["Saldo", "Tarjetas", "Créditos"]
    assert menu[1]["options"][2]["value"]["input"]["text"] == "créditos"

    listing = _send(assistant, session_id, "lista")["output"]["generic"][0]
    assert listing["preference"] == "dropdown"
    assert len(listing["options"]) == 6
    assert all(len(o["label"]) <= 24 for o in listing["options"])

    assert len(_send(assistant, session_id, "muchas")["output"]["generic"][0]["options"]) == 12

    handoff = _send(assistant, session_id, "quiero un asesor")["output"]["generic"]
    assert handoff[1]["response_type"] == "connect_to_agent"
    assert handoff[1]["agent_available"]["message"] == "Un asesor te atenderá en breve."

    echo = _send(assistant, session_id, "Qué tal")
    assert echo["output"]["generic"] == [{"response_type": "text", "text": "Dijiste: Qué tal"}]
    assert echo["context"]["global"]["system"]["turn_count"] == 5


def test_watson_context_only_on_request(watson: FakeWatson, assistant: AssistantV2) -> None:
    session_id = assistant.create_session("asst", "env").get_result()["session_id"]
    result = assistant.message("asst", "env", session_id, input={"text": "hi"}).get_result()
    assert "context" not in result
    assert result["user_id"] == session_id


def test_watson_expired_session_is_invalid(watson: FakeWatson, assistant: AssistantV2) -> None:
    session_id = assistant.create_session("asst", "env").get_result()["session_id"]
    watson.expire_all_sessions()

    with pytest.raises(ApiException) as caught:
        _send(assistant, session_id, "hola")

    assert caught.value.status_code == 404
    assert caught.value.message == "Invalid Session"


def test_watson_idle_timeout_refreshed_by_messages(
    watson: FakeWatson, assistant: AssistantV2
) -> None:
    watson.session_idle_timeout = 0.25
    session_id = assistant.create_session("asst", "env").get_result()["session_id"]
    for _ in range(2):
        time.sleep(0.15)  # together longer than the timeout: only refreshes keep it alive
        _send(assistant, session_id, "hola")

    time.sleep(0.3)
    with pytest.raises(ApiException) as caught:
        _send(assistant, session_id, "hola")
    assert caught.value.status_code == 404


def test_watson_missing_version_is_400(watson: FakeWatson) -> None:
    response = requests.post(f"{watson.url}/v2/assistants/asst/sessions", json={}, timeout=5)

    assert response.status_code == 400
    assert response.json() == {"error": "Missing required query parameter 'version'", "code": 400}


def test_watson_legacy_paths(watson: FakeWatson) -> None:
    base = f"{watson.url}/v2/assistants/asst/sessions"
    params = {"version": VERSION}
    session_id = requests.post(base, params=params, json={}, timeout=5).json()["session_id"]

    reply = requests.post(
        f"{base}/{session_id}/message", params=params, json={"input": {"text": "x"}}, timeout=5
    )
    deleted = requests.delete(f"{base}/{session_id}", params=params, timeout=5)

    assert reply.json()["output"]["generic"][0]["text"] == "Dijiste: x"
    assert deleted.status_code == 200


def test_watson_scripted_failure_then_recovery(watson: FakeWatson, assistant: AssistantV2) -> None:
    watson.fail_next(503)

    with pytest.raises(ApiException) as caught:
        assistant.create_session("asst", "env")

    assert caught.value.status_code == 503
    assert assistant.create_session("asst", "env").get_status_code() == 201


def test_watson_control_endpoint(watson: FakeWatson, assistant: AssistantV2) -> None:
    session_id = assistant.create_session("asst", "env").get_result()["session_id"]

    control = requests.post(
        f"{watson.url}/_fake/control",
        json={"expire_sessions": True, "fail": {"status": 500, "count": 1}},
        timeout=5,
    )
    assert control.json() == {"ok": True}
    with pytest.raises(ApiException) as caught:
        _send(assistant, session_id, "hola")
    assert caught.value.status_code == 500
    with pytest.raises(ApiException) as caught:
        _send(assistant, session_id, "hola")
    assert caught.value.status_code == 404
    assert watson.message_calls == 2  # counted on arrival, failed or not

    bad = requests.post(f"{watson.url}/_fake/control", json={"dealy_ms": 5}, timeout=5)
    assert bad.status_code == 400
    recorded = requests.get(f"{watson.url}/_fake/requests", timeout=5).json()["requests"]
    assert [r["method"] for r in recorded] == ["POST", "POST", "POST"]


# -- WhatsApp --------------------------------------------------------------------------------


def test_whatsapp_send_is_recorded(whatsapp: FakeWhatsApp) -> None:
    response = _post(whatsapp, _text_body(text="¡Hola!"))

    assert response.status_code == 200
    payload = response.json()
    wamid = payload["messages"][0]["id"]
    assert wamid.startswith("wamid.")
    assert payload["contacts"] == [{"input": "573001112233", "wa_id": "573001112233"}]
    [sent] = whatsapp.wait_for_sent(1, timeout=1, to="573001112233")
    assert sent["id"] == wamid
    assert sent["seq"] == 1
    assert sent["text"] == "¡Hola!"
    assert sent["phone_number_id"] == "123456"
    assert whatsapp.requests[0]["headers"]["authorization"] == f"Bearer {TOKEN}"


def test_whatsapp_interactive_rendering(whatsapp: FakeWhatsApp) -> None:
    body = {
        "messaging_product": "whatsapp",
        "to": "573001112233",
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": "Elige una opción"},
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": "saldo", "title": "Saldo"}},
                    {"type": "reply", "reply": {"id": "tarjetas", "title": "Tarjetas"}},
                ]
            },
        },
    }
    _post(whatsapp, body)

    assert whatsapp.sent_to("573001112233")[0]["text"] == "Elige una opción\nSaldo\nTarjetas"


def test_whatsapp_bad_bearer_is_401(whatsapp: FakeWhatsApp) -> None:
    response = _post(whatsapp, _text_body(), headers={"Authorization": "Bearer nope"})

    assert response.status_code == 401
    assert response.json()["error"]["code"] == 190
    assert whatsapp.sent == []


def test_whatsapp_meta_error_once_then_success(whatsapp: FakeWhatsApp) -> None:
    whatsapp.fail_with_code(131047)

    failed = _post(whatsapp, _text_body())
    ok = _post(whatsapp, _text_body())

    assert failed.status_code == 400
    error = failed.json()["error"]
    assert error["code"] == 131047
    assert error["message"] == "(#131047) Re-engagement message"
    assert error["error_data"]["messaging_product"] == "whatsapp"
    assert ok.status_code == 200
    assert len(whatsapp.sent) == 1


def test_whatsapp_meta_error_via_control(whatsapp: FakeWhatsApp) -> None:
    requests.post(
        f"{whatsapp.url}/_fake/control",
        json={"fail": {"code": 130429, "http_status": 429}},
        timeout=5,
    )

    failed = _post(whatsapp, _text_body())

    assert failed.status_code == 429
    assert failed.json()["error"]["code"] == 130429


def test_whatsapp_messages_after_filter(whatsapp: FakeWhatsApp) -> None:
    for to, text in [("111", "a"), ("222", "b"), ("111", "c")]:
        _post(whatsapp, _text_body(to=to, text=text))

    url = f"{whatsapp.url}/_fake/messages"
    after_one = requests.get(url, params={"after": 1}, timeout=5).json()["messages"]
    to_111 = requests.get(url, params={"to": "111", "after": 1}, timeout=5).json()["messages"]

    assert [m["text"] for m in after_one] == ["b", "c"]
    assert [(m["seq"], m["text"]) for m in to_111] == [(3, "c")]


def test_whatsapp_read_receipt_not_counted(whatsapp: FakeWhatsApp) -> None:
    receipt = {"messaging_product": "whatsapp", "status": "read", "message_id": "wamid.X"}

    response = _post(whatsapp, receipt)

    assert response.json() == {"success": True}
    assert whatsapp.sent == []
    assert whatsapp.read_receipts == [receipt]


def test_whatsapp_wait_for_sent_reports_what_was_sent(whatsapp: FakeWhatsApp) -> None:
    _post(whatsapp, _text_body(to="111", text="only this"))

    with pytest.raises(AssertionError, match="only this"):
        whatsapp.wait_for_sent(1, timeout=0.05, to="222")


def test_delay_applies_to_vendor_calls_only(whatsapp: FakeWhatsApp) -> None:
    requests.post(f"{whatsapp.url}/_fake/control", json={"delay_ms": 200}, timeout=5)

    started = time.monotonic()
    requests.get(f"{whatsapp.url}/_fake/requests", timeout=5)
    control_elapsed = time.monotonic() - started
    started = time.monotonic()
    _post(whatsapp, _text_body())
    vendor_elapsed = time.monotonic() - started

    assert control_elapsed < 0.15
    assert vendor_elapsed >= 0.2
    assert len(whatsapp.sent) == 1


def test_call_abandoned_across_reset_does_not_leak(whatsapp: FakeWhatsApp) -> None:
    whatsapp.delay = 0.2
    with pytest.raises(requests.Timeout):
        _post(whatsapp, _text_body(), timeout=0.05)

    whatsapp.reset()  # what the next test's setup does while the call still sleeps
    time.sleep(0.3)

    assert whatsapp.sent == []


def test_the_fake_reports_sent_delivered_and_read_signed_with_our_reference(whatsapp):
    """As Meta does: each accepted message's statuses go to the business's webhook, signed with
    the app secret, echoing biz_opaque_callback_data."""
    received: list[tuple[dict, str]] = []

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((json.loads(body), self.headers["X-Hub-Signature-256"]))
            expected = "sha256=" + hmac.new(b"secret", body, hashlib.sha256).hexdigest()
            self.send_response(200 if received[-1][1] == expected else 401)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return None

    server = HTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        whatsapp.status_webhook = StatusWebhook(
            url=f"http://127.0.0.1:{server.server_port}/", app_secret="secret", read_after=0.1
        )
        sent = requests.post(
            f"{whatsapp.url}/v23.0/123/messages",
            json={
                "messaging_product": "whatsapp",
                "to": "573001",
                "type": "text",
                "text": {"body": "hola"},
                "biz_opaque_callback_data": "chatbridge:7",
            },
            headers=AUTH,
            timeout=5,
        ).json()["messages"][0]["id"]
        whatsapp.wait_until(lambda: len(whatsapp.statuses_delivered) == 3, 10, "statuses")
    finally:
        server.shutdown()
    statuses = [item["entry"][0]["changes"][0]["value"]["statuses"][0] for item, _ in received]
    assert [s["status"] for s in statuses] == ["sent", "delivered", "read"]
    assert {s["id"] for s in statuses} == {sent}
    assert {s["biz_opaque_callback_data"] for s in statuses} == {"chatbridge:7"}
    assert [answer for _, _, answer in whatsapp.statuses_delivered] == [200, 200, 200]
