"""Faults made for real, beyond the cache's (tests/test_cache.py) and the channel layer's
(tests/test_agents_processes.py): PostgreSQL unreachable, WhatsApp failing in each way."""

import time
from collections.abc import Iterator

import pytest
import requests
from django.db import connection

from rooms.models import Message, Room
from tests.payloads import text_from
from tests.servers import AppProcess, TcpProxy, database_url, post_signed, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573007070707"


@pytest.fixture
def proxied_server(fake_vendors) -> Iterator[tuple[AppProcess, TcpProxy]]:
    proxy = TcpProxy(int(connection.settings_dict["PORT"] or 5432)).start()
    server = AppProcess.daphne(
        DATABASE_URL=database_url(port=proxy.port), DATABASE_POOL_TIMEOUT="1"
    ).start()
    yield server, proxy
    server.stop()
    proxy.cut()


def test_postgresql_unreachable_answers_503_and_recovers_exactly_once(
    proxied_server, whatsapp, record_fault
):
    server, proxy = proxied_server
    assert post_signed(server.url, text_from(WA, "hola")).status_code == 200
    assert requests.get(f"{server.url}/readyz", timeout=10).json()["checks"]["database"] == "ok"

    proxy.cut()
    during = text_from(WA, "¿siguen ahí?", wamid="wamid.during-outage")
    started = time.perf_counter()
    refused = post_signed(server.url, during)
    waited = time.perf_counter() - started
    ready = requests.get(f"{server.url}/readyz", timeout=10)
    alive = requests.get(f"{server.url}/healthz", timeout=10)

    assert refused.status_code == 503  # WhatsApp will deliver it again
    assert refused.headers["Retry-After"] == "30"
    assert (ready.status_code, ready.json()["status"]) == (503, "not ready")
    assert alive.status_code == 200
    assert not Message.objects.filter(wa_message_id="wamid.during-outage").exists()

    proxy.start()
    wait_until(
        lambda: requests.get(f"{server.url}/readyz", timeout=10).status_code == 200,
        timeout=20,
        what="ready again",
    )
    first = post_signed(server.url, during)
    second = post_signed(server.url, during)
    assert (first.json()["stored"], second.json()["duplicates"]) == (1, 1)
    replies = [m["text"] for m in whatsapp.sent_to(WA)]
    assert replies.count("Dijiste: ¿siguen ahí?") == 1
    record_fault(
        "PostgreSQL unreachable (TCP relay cut)",
        done="webhook during the outage, then WhatsApp's redelivery twice",
        held="503 + Retry-After, nothing stored, /readyz 503, /healthz 200; redelivered once",
        figures=f"503 answered in {waited * 1000:.0f} ms",
    )


def test_whatsapp_timeout_is_recorded_not_retried(post_webhook, whatsapp, settings, record_fault):
    settings.WHATSAPP_TIMEOUT = 0.5
    whatsapp.delay = 1.0  # answers after the client gave up: the send may have happened
    try:
        post_webhook(text_from(WA, "hola"))
    finally:
        whatsapp.delay = 0
    reply = Message.objects.get(direction="out")
    # Outcome unknown: still this send's, waiting for WhatsApp's status (test_send_ownership).
    assert reply.status == Message.Status.SENDING
    assert "timeout" in reply.error_detail
    attempts = [r for r in whatsapp.requests if r["path"].endswith("/messages")]
    assert len(attempts) == 1  # a retry could deliver the reply twice
    assert Room.objects.get().status == Room.Status.BOT
    record_fault(
        "WhatsApp API timeout",
        done="bot reply sent to a fake that answers after the client's timeout",
        held="not retried; left 'sending' until WhatsApp's status settles it (or the grace ends)",
        figures="1 attempt",
    )


@pytest.mark.parametrize(("status", "code"), [(500, 131000), (503, 1), (429, 130429)])
def test_whatsapp_transient_errors_are_retried_with_backoff(
    post_webhook, whatsapp, status, code, record_fault
):
    whatsapp.fail_with_code(code, http_status=status, count=2)
    started = time.perf_counter()
    post_webhook(text_from(WA, "hola"))
    elapsed = time.perf_counter() - started
    reply = Message.objects.get(direction="out")
    assert reply.status == Message.Status.SENT
    assert len([r for r in whatsapp.requests if r["path"].endswith("/messages")]) == 3
    record_fault(
        f"WhatsApp API {status} (code {code}) twice",
        done="bot reply against two scripted failures",
        held="retried with backoff, sent on the third attempt, nothing duplicated",
        figures=f"3 attempts, {elapsed * 1000:.0f} ms for the whole webhook",
    )


def test_whatsapp_unreachable_is_retried_then_handed_to_agents(post_webhook, settings):
    settings.WHATSAPP_API_URL = "http://127.0.0.1:9/v23.0"  # nothing listens: refused
    from rooms.whatsapp.client import whatsapp_client

    whatsapp_client.cache_clear()
    post_webhook(text_from(WA, "hola"))
    reply = Message.objects.get(direction="out")
    assert reply.status == Message.Status.FAILED
    assert "cannot connect" in reply.error_detail
    assert Room.objects.get().status == Room.Status.QUEUED
