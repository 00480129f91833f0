"""Liveness and readiness for load balancers and orchestrators.

PostgreSQL is the only hard dependency: without it nothing can be stored, so the process is not
ready (the webhook answers 503 and WhatsApp delivers again later). Redis, for the cache and the
channel layer, only makes chatbridge faster and live; without it the process works, and says so
as "degraded".
"""

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_redis import get_redis_connection

from chatbridge.cache_client import breaker_for

logger = logging.getLogger("chatbridge.health")


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """The process answers: nothing else is checked."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database(), "cache": _cache(), "channel_layer": _channel_layer()}
    ready = checks["database"] == "ok"
    if not ready:
        status = "not ready"
    elif all(value in ("ok", "not configured") for value in checks.values()):
        status = "ok"
    else:
        status = "degraded"
    return JsonResponse({"status": status, "checks": checks}, status=200 if ready else 503)


def _database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except DatabaseError as error:
        logger.warning("readiness: database unavailable: %s", error)
        return "unavailable"


def _cache() -> str:
    location = settings.CACHES["default"].get("LOCATION")
    if "django_redis" not in settings.CACHES["default"]["BACKEND"]:
        return "not configured"
    breaker = breaker_for(str(location))
    if breaker.is_open:
        return "degraded"
    try:
        get_redis_connection("default").ping()
        return "ok"
    except Exception as error:  # noqa: BLE001 - any failure: degraded, never not-ready
        breaker.record_failure(error)
        return "degraded"


def _channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None or not settings.CHANNELS_REDIS_URL:
        return "not configured"
    try:
        async_to_sync(_layer_ping)(layer)
        return "ok"
    except Exception:  # noqa: BLE001
        return "degraded"


async def _layer_ping(layer: Any) -> None:
    await asyncio.wait_for(layer.group_send("health.ping", {"type": "health.ping"}), timeout=1.0)
