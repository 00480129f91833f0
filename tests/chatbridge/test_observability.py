"""What operators see: /metrics (across processes), /healthz and /readyz, JSON logs, and the
operations page."""

import io
import json
import logging
import os
import socket
import tempfile

import pytest
import requests
import yaml
from django.contrib.auth.models import User
from prometheus_client import REGISTRY

from chatbridge.logs import JsonFormatter
from chatbridge.metrics import process_identity
from tests.payloads import text_from
from tests.servers import ROOT, AppProcess, RedisServer, post_signed, stop_all

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573006060606"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_count_every_stage_of_a_message(client, post_webhook):
    before = {
        stage: sample("chatbridge_webhook_stage_seconds_count", stage=stage)
        for stage in ("verify", "store", "enqueue")
    }
    turn_before = {
        stage: sample("chatbridge_turn_stage_seconds_count", stage=stage)
        for stage in ("cache", "watson", "send")
    }
    sends = sample("chatbridge_whatsapp_sends_total", result="sent", code="")
    watson_ok = sample("chatbridge_watson_calls_total", result="ok")
    misses = sample("chatbridge_cache_lookups_total", family="customer", result="misses")

    post_webhook(text_from(WA, "hola"))
    post_webhook(text_from(WA, "agente"))

    for stage in ("verify", "store", "enqueue"):
        assert sample("chatbridge_webhook_stage_seconds_count", stage=stage) == before[stage] + 2
    for stage in ("cache", "watson", "send"):
        assert sample("chatbridge_turn_stage_seconds_count", stage=stage) >= turn_before[stage] + 1
    assert sample("chatbridge_whatsapp_sends_total", result="sent", code="") == sends + 2
    assert sample("chatbridge_watson_calls_total", result="ok") == watson_ok + 1
    assert (
        sample("chatbridge_cache_lookups_total", family="customer", result="misses") == misses + 1
    )

    text = client.get("/metrics").content.decode()
    assert "chatbridge_queue_length 1.0" in text
    assert "chatbridge_queue_oldest_seconds" in text
    assert 'chatbridge_webhook_stage_seconds_bucket{le="0.005",stage="verify"}' in text


def test_metrics_are_summed_across_processes(fake_vendors):
    with tempfile.TemporaryDirectory() as shared:
        servers = [AppProcess.daphne(PROMETHEUS_MULTIPROC_DIR=shared).start() for _ in range(2)]
        try:
            for index in range(5):
                post_signed(servers[index % 2].url, text_from(WA, f"hola {index}"))
            text = requests.get(f"{servers[0].url}/metrics", timeout=10).text
        finally:
            stop_all(servers)
    counts = [
        line
        for line in text.splitlines()
        if line.startswith('chatbridge_webhook_stage_seconds_count{stage="verify"}')
    ]
    assert counts == ['chatbridge_webhook_stage_seconds_count{stage="verify"} 5.0']


def _value(text: str, prefix: str) -> float:
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines)


def test_one_web_process_reports_the_worker_and_daphne(fake_vendors, whatsapp):
    """As compose runs it (every process on one metrics directory): the turn's stages, Watson's
    calls and WhatsApp's sends happen in the worker, a request on Daphne, yet one scrape of
    gunicorn reports them. Before, only the web processes wrote there."""
    with tempfile.TemporaryDirectory() as shared:
        env = {"PROMETHEUS_MULTIPROC_DIR": shared, "TASKS_BACKEND": "database"}
        web = AppProcess.gunicorn(**env).start()
        daphne = AppProcess.daphne(**env).start()
        worker = AppProcess.turn_worker(**env).start()
        try:
            assert post_signed(web.url, text_from(WA, "hola")).status_code == 200
            whatsapp.wait_for_sent(1, timeout=20, to=WA)
            assert post_signed(daphne.url, text_from("573006060607", "hola")).status_code == 200
            whatsapp.wait_for_sent(1, timeout=20, to="573006060607")
            text = requests.get(f"{web.url}/metrics", timeout=10).text
        finally:
            stop_all((web, daphne, worker))
    assert _value(text, 'chatbridge_turn_stage_seconds_count{stage="watson"}') == 2
    assert _value(text, 'chatbridge_turn_stage_seconds_count{stage="send"}') == 2
    assert _value(text, 'chatbridge_watson_calls_total{result="ok"}') == 2
    assert _value(text, 'chatbridge_whatsapp_sends_total{code="",result="sent"}') == 2
    assert _value(text, 'chatbridge_webhook_stage_seconds_count{stage="verify"}') == 2


def test_a_process_makes_the_metrics_directory_if_it_is_missing(fake_vendors):
    """gunicorn used to make it while emptying it; now no process empties it, and the first
    one of a host must still find it there."""
    with tempfile.TemporaryDirectory() as parent:
        missing = os.path.join(parent, "not-yet", "metrics")
        web = AppProcess.gunicorn(PROMETHEUS_MULTIPROC_DIR=missing).start()
        try:
            assert requests.get(f"{web.url}/healthz", timeout=10).status_code == 200
            assert requests.get(f"{web.url}/metrics", timeout=10).status_code == 200
        finally:
            web.stop()
        assert os.listdir(missing)


def test_metrics_need_the_token_once_one_is_set(client, settings):
    settings.METRICS_TOKEN = "scrape-me"
    for path in ("/metrics", "/cache/stats"):
        assert client.get(path).status_code == 401
        assert client.get(path, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
        assert client.get(path, HTTP_AUTHORIZATION="scrape-me").status_code == 401
        assert client.get(path, HTTP_AUTHORIZATION="Bearer scrape-me").status_code == 200


def test_without_a_token_metrics_are_only_for_the_internal_network(client, settings):
    settings.METRICS_TOKEN = ""
    for path in ("/metrics", "/cache/stats"):
        assert client.get(path).status_code == 200  # a scrape of the process itself
        proxied = client.get(path, HTTP_X_FORWARDED_FOR="203.0.113.5", HTTP_AUTHORIZATION="x")
        assert proxied.status_code == 403


def test_health_and_readiness(client, settings):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready == {
        "status": "ok",
        "checks": {"database": "ok", "cache": "ok", "channel_layer": "ok"},
    }


def test_readiness_says_degraded_without_the_cache(client, settings):
    server = RedisServer().start()
    try:
        settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": server.url}}
        server.stop()
        response = client.get("/readyz")
    finally:
        server.cleanup()
    assert response.status_code == 200  # chatbridge works without Redis
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["cache"] == "degraded"


def test_logs_are_json_lines_with_request_and_room(post_webhook):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        post_webhook(text_from(WA, "mi secreto 1234"), HTTP_X_REQUEST_ID="req-abc")
    finally:
        root.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    stored = [line for line in lines if line["message"].startswith("stored message")]
    assert stored and stored[0]["request_id"] == "req-abc"
    assert isinstance(stored[0]["room_id"], int)
    assert all(line["request_id"] == "req-abc" for line in lines)
    raw = stream.getvalue()
    assert WA not in raw and "mi secreto" not in raw


def test_response_carries_a_request_id(client):
    assert len(client.get("/healthz").headers["X-Request-ID"]) == 32
    echoed = client.get("/healthz", HTTP_X_REQUEST_ID="abc-123").headers["X-Request-ID"]
    assert echoed == "abc-123"
    refused = client.get("/healthz", HTTP_X_REQUEST_ID="bad id\n").headers["X-Request-ID"]
    assert refused != "bad id\n"


def test_operations_page(client, post_webhook, whatsapp):
    post_webhook(text_from(WA, "agente"))
    whatsapp.fail_with_code(131047)
    post_webhook(text_from("573006060607", "hola"))
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "secret"))
    page = client.get("/admin/operations/").content.decode()
    assert 'id="queue-length">2 room(s)' in page  # the hand-off and the failed send
    assert 'id="failed-count">1<' in page
    assert "131047" in page
    assert 'id="cache-stats"' in page
    assert client.get("/admin/").content.decode().count("/admin/operations/") == 1


def test_every_process_of_the_compose_shape_reports_into_one_metrics_directory():
    """The compose file gave the directory to the web processes only: the worker's turns, Watson
    calls and sends and Daphne's consoles never reached /metrics."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    app = [name for name, service in services.items() if service.get("image") == "chatbridge"]
    assert {"web1", "web2", "ws1", "ws2", "worker", "periodic", "migrate"} <= set(app)
    directories = {services[name]["environment"].get("PROMETHEUS_MULTIPROC_DIR") for name in app}
    assert len(directories) == 1 and None not in directories
    (directory,) = directories
    for name in app:
        assert f"metrics:{directory}" in services[name]["volumes"], name
    # Emptied once, before the processes start; not by gunicorn, which would empty it under the
    # feet of the worker and Daphne.
    assert "metrics_reset" in " ".join(services["migrate"]["command"])
    assert "rmtree" not in (ROOT / "deploy" / "gunicorn.conf.py").read_text()


def test_processes_of_two_containers_never_share_a_metrics_file(monkeypatch):
    """Containers number their processes from 1: by pid alone, two would write one file."""
    monkeypatch.setattr(os, "getpid", lambda: 7)
    monkeypatch.setattr(socket, "gethostname", lambda: "web_1")
    assert process_identity() == "web-1-7"
