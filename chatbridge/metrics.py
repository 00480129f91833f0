"""Prometheus metrics, correct across processes.

With PROMETHEUS_MULTIPROC_DIR set (read by prometheus-client itself, before it is imported),
every process writes its samples to files in that directory and `/metrics` sums them, so one
scrape of any web process reports gunicorn, Daphne, the task workers and the periodic job alike.
Every process of a host must see the same directory (docker-compose.yml: the `metrics` volume),
which is emptied once when the host starts, not by each process (`manage.py metrics_reset`).
Without it (the embedded run) each process reports its own.
"""

import hmac
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)


def process_identity() -> str:
    """A process's name in the metrics directory: containers sharing it each number their
    processes from 1, so the pid alone would let two processes write one file. No `_`:
    prometheus-client splits the file names on it."""
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # The first process of a host makes it (metrics_reset empties it; nothing else does).
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
    values.ValueClass = values.MultiProcessValue(process_identifier=process_identity)
    # A restarted container has its old hostname and pid: its dead predecessor's live gauges
    # (connected consoles) must not be counted with its own.
    multiprocess.mark_process_dead(process_identity())

# From a cached lookup (~0.2 ms) to Watson's timeout (10 s).
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

WEBHOOK_STAGE = Histogram(
    "chatbridge_webhook_stage_seconds",
    "Time in each stage of the webhook: verify (signature and parsing), store, enqueue (immediate "
    "mode: the whole turn; database mode: the task row, written with the message itself when "
    "the cache names the bot's room, so near zero).",
    ["stage"],
    buckets=_BUCKETS,
)
TURN_STAGE = Histogram(
    "chatbridge_turn_stage_seconds",
    "Time in each stage of a bot turn: read_mark (read mark and typing), cache (session lookup), "
    "watson, send.",
    ["stage"],
    buckets=_BUCKETS,
)
CACHE_LOOKUPS = Counter(
    "chatbridge_cache_lookups_total",
    "Cache lookups by key family and result.",
    ["family", "result"],
)
WATSON_CALLS = Counter(
    "chatbridge_watson_calls_total",
    "Watson message calls by result: ok, expired (session replaced), error.",
    ["result"],
)
WHATSAPP_SENDS = Counter(
    "chatbridge_whatsapp_sends_total",
    "WhatsApp sends by result and Meta error code (empty when there is none).",
    ["result", "code"],
)
LAYER_PUBLISH_FAILURES = Counter(
    "chatbridge_channel_layer_publish_failures_total",
    "Events the channel layer could not take (agents catch up from PostgreSQL).",
)
AGENTS_CONNECTED = Gauge(
    "chatbridge_agents_connected",
    "Open agent consoles.",
    multiprocess_mode="livesum",
)


# --- the reports' figures that are counters and histograms (README, *Reports*; observed by
# rooms/reports/receivers.py from the room events as they commit, and by the survey's services)

# From a few seconds to a long morning's wait.
_WAIT_BUCKETS = (5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)
# From a quick conversation to one that lasts the afternoon.
_HANDLING_BUCKETS = (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 14400)

HANDOFFS = Counter(
    "chatbridge_handoffs_total",
    "Rooms the bot handed to the agents' queue, by area (the area's code).",
    ["area"],
)
ASSIGNMENTS = Counter(
    "chatbridge_assignments_total",
    "Rooms given to an agent, by how: taken, auto, transferred, reassigned.",
    ["how"],
)
ROOMS_CLOSED = Counter(
    "chatbridge_rooms_closed_total",
    "Rooms closed, by area (none: the bot's own), served_by (bot: never handed off; agents) "
    "and closed_by (person: an agent, a supervisor or an operator; automatic: inactivity, hours).",
    ["area", "served_by", "closed_by"],
)
CLOSURE_REASONS = Counter(
    "chatbridge_closure_reasons_total",
    "Rooms closed, by their closure reason as the agents and operators name them.",
    ["reason"],
)
QUEUE_WAIT = Histogram(
    "chatbridge_queue_wait_seconds",
    "From a room's first hand-off to its first assignment, observed at that assignment.",
    ["area"],
    buckets=_WAIT_BUCKETS,
)
FIRST_RESPONSE = Histogram(
    "chatbridge_first_response_seconds",
    "From a room's first assignment to its first agent message, observed at that message.",
    ["area"],
    buckets=_WAIT_BUCKETS,
)
HANDLING = Histogram(
    "chatbridge_handling_seconds",
    "From a room's first assignment to its close, observed at the close.",
    ["area"],
    buckets=_HANDLING_BUCKETS,
)
# The survey's (rooms/conversation/survey.py starts it, rooms/bot/survey.py reads the answers):
# survey_observe below is what those moments call.
SURVEYS = Counter(
    "chatbridge_surveys_total",
    "Post-close surveys by event: started, completed, expired, ended (by a new conversation).",
    ["event"],
)
SURVEY_ANSWERS = Counter(
    "chatbridge_survey_answers_total",
    "Survey answers given, by question: nps, resolved, satisfaction, comment.",
    ["question"],
)
SURVEY_NPS = Histogram(
    "chatbridge_survey_nps_score",
    "The recommendation answers (0-10): promoters are le=10 minus le=8, detractors le=6.",
    buckets=tuple(range(11)),
)
SURVEY_SATISFACTION = Histogram(
    "chatbridge_survey_satisfaction_score",
    "The satisfaction answers (1-5).",
    buckets=(1, 2, 3, 4, 5),
)


def survey_observe(*, event: str = "", question: str = "", value: Any = None) -> None:
    """A survey moment: `event` (started, completed, expired, ended) or an answer to `question`
    (nps, resolved, satisfaction, comment: the Survey field it fills) with its `value`. Call it
    once the change commits (transaction.on_commit)."""
    if event:
        SURVEYS.labels(event=event).inc()
    if question:
        SURVEY_ANSWERS.labels(question=question).inc()
        score = SURVEY_NPS if question == "nps" else SURVEY_SATISFACTION
        if question in ("nps", "satisfaction") and isinstance(value, int):
            score.observe(value)


@contextmanager
def timed(histogram: Histogram, stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        histogram.labels(stage=stage).observe(time.perf_counter() - started)


# Collectors read at scrape time from the database (the apps add theirs when they are ready).
_scrape_collectors: list[Any] = []


def scrape_collector_add(collector: Any) -> None:
    _scrape_collectors.append(collector)


def operators_only(view: Callable[[HttpRequest], HttpResponse]) -> Callable[..., HttpResponse]:
    """With METRICS_TOKEN set, the view answers only a request bearing it (401 otherwise).
    Without one it answers only requests that did not come through the proxy (which always adds
    X-Forwarded-For): the internal network's scrapes of the process itself."""

    @wraps(view)
    def guarded(request: HttpRequest) -> HttpResponse:
        token = settings.METRICS_TOKEN
        if not token:
            if "HTTP_X_FORWARDED_FOR" in request.META:
                return HttpResponse(
                    "served to the internal network only; set METRICS_TOKEN to reach it through "
                    "the proxy\n",
                    status=403,
                )
            return view(request)
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(given.encode(), token.encode()):
            response = HttpResponse("a metrics token is required\n", status=401)
            response["WWW-Authenticate"] = 'Bearer realm="chatbridge metrics"'
            return response
        return view(request)

    return guarded


@require_GET
@operators_only
def metrics_view(request: HttpRequest) -> HttpResponse:
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    body = generate_latest(registry)
    scraped = CollectorRegistry()
    for collector in _scrape_collectors:
        scraped.register(collector)
    body += generate_latest(scraped)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
