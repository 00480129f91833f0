"""Every cache key, TTL and flush of chatbridge (ADR-012), and the hit/miss/error counts.

Values are small dicts of ids and strings, never model instances. PostgreSQL is the truth; a
cached value is a copy that every write flushes (see the `post_save` receivers in each app's
`signals.py`). Where a stale copy would route a message wrongly, the write that uses it checks
it against the row (see `rooms.inbound.services`), so a flush lost to an outage cannot misroute.
"""

import contextlib
import hashlib
import logging
import re
import threading
import time
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection

from chatbridge.cache_client import breaker_for, last_call_failed
from chatbridge.metrics import CACHE_LOOKUPS

logger = logging.getLogger("chatbridge.cache")

# Bump when the shape of a cached value changes: old entries are then simply never read.
KEY_VERSION = "v1"

# A customer's name changes rarely and every edit flushes; 15 min bounds a missed flush (ADR-012).
CUSTOMER_TTL = 15 * 60
# A room's status changes often (bot -> queued -> assigned -> closed); every change flushes, and
# the message write re-checks the status, so 5 min only bounds how long a dead entry lingers.
ACTIVE_ROOM_TTL = 5 * 60
# The registered business numbers: read on every webhook POST, flushed on every change.
LINES_TTL = 5 * 60
# Per-room figures for operators: a little staleness is fine, a query per page view is not.
ROOM_METRICS_TTL = 30
# ADR-012 keeps a Watson session id for 1 h, but never past the assistant's own inactivity
# timeout: a cached id that Watson has already forgotten costs a failed call and a retry.
WATSON_SESSION_TTL_MAX = 60 * 60
WATSON_SESSION_TTL_MARGIN = 60


def watson_session_ttl() -> int:
    timeout = settings.WATSON_SESSION_TIMEOUT
    return max(
        1, min(WATSON_SESSION_TTL_MAX, timeout - min(WATSON_SESSION_TTL_MARGIN, timeout // 5))
    )


class Family(StrEnum):
    CUSTOMER = "customer"
    ACTIVE_ROOM = "active_room"
    WATSON_SESSION = "watson_session"
    ROOM_METRICS = "room_metrics"
    LINES = "lines"


_SAFE_PART = re.compile(r"^[A-Za-z0-9._+-]{1,100}$")


def _part(value: object) -> str:
    text = str(value)
    if _SAFE_PART.match(text):
        return text
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _key(family: Family, *parts: object) -> str:
    return ":".join([KEY_VERSION, family.value, *(_part(part) for part in parts)])


def _family_of(key: str) -> str:
    return key.split(":", 2)[1]


def customer_cache_key(*, provider: str, uid: str) -> str:
    return _key(Family.CUSTOMER, provider, uid)


def active_room_cache_key(*, provider: str, uid: str, line: str = "") -> str:
    # Keyed by the customer's provider and uid rather than their row id, so the webhook fetches
    # the customer and their room in one round trip; and by the business number written to
    # (Room.line; the main one's key has none, as before there were several).
    if line:
        return _key(Family.ACTIVE_ROOM, provider, uid, line)
    return _key(Family.ACTIVE_ROOM, provider, uid)


def lines_cache_key() -> str:
    """The business numbers operators registered (rooms.WhatsAppNumber), as one entry."""
    return _key(Family.LINES)


def watson_session_cache_key(*, room_id: int) -> str:
    return _key(Family.WATSON_SESSION, room_id)


def room_metrics_cache_key(*, room_id: int) -> str:
    return _key(Family.ROOM_METRICS, room_id)


# --- reads and writes ---------------------------------------------------------------------------


def cache_get_many(keys: list[str]) -> dict[str, Any]:
    """One round trip for several lookups; a Redis failure reads as misses, counted as errors."""
    values = cache.get_many(keys)
    failed = last_call_failed() if _uses_redis() else False
    for key in keys:
        result = "errors" if failed else ("hits" if key in values else "misses")
        stats.record(_family_of(key), result)
        CACHE_LOOKUPS.labels(family=_family_of(key), result=result).inc()
    return values


def cache_get(key: str) -> Any:
    return cache_get_many([key]).get(key)


def cache_set(key: str, value: Any, *, ttl: int) -> None:
    cache.set(key, value, timeout=ttl)


def flush_customer(*, provider: str, uid: str) -> None:
    cache.delete(customer_cache_key(provider=provider, uid=uid))


def flush_active_room(*, provider: str, uid: str, line: str = "") -> None:
    cache.delete(active_room_cache_key(provider=provider, uid=uid, line=line))


def flush_lines() -> None:
    cache.delete(lines_cache_key())


def flush_watson_session(*, room_id: int) -> None:
    cache.delete(watson_session_cache_key(room_id=room_id))


def flush_room_metrics(*, room_id: int) -> None:
    cache.delete(room_metrics_cache_key(room_id=room_id))


def _uses_redis() -> bool:
    return "django_redis" in settings.CACHES["default"]["BACKEND"]


# --- statistics ---------------------------------------------------------------------------------

# Each process counts in memory and adds its counts to one Redis hash every few seconds
# (CACHE_STATS_FLUSH_SECONDS), so the totals cover every process without a Redis round trip on
# each lookup.
_FIELDS = ("hits", "misses", "errors")


class CacheStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._unflushed: dict[tuple[str, str], int] = {}
        self._local: dict[tuple[str, str], int] = {}
        self._last_flush = time.monotonic()

    def record(self, family: str, field: str) -> None:
        with self._lock:
            self._unflushed[family, field] = self._unflushed.get((family, field), 0) + 1
            self._local[family, field] = self._local.get((family, field), 0) + 1
            due = time.monotonic() - self._last_flush >= settings.CACHE_STATS_FLUSH_SECONDS
        if due:
            self.flush()

    def _stats_key(self) -> str:
        return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:{KEY_VERSION}:stats"

    def flush(self) -> bool:
        """Add this process's counts to the shared hash; keep them for later if Redis is down."""
        with self._lock:
            self._last_flush = time.monotonic()
            pending, self._unflushed = self._unflushed, {}
        if not pending or not _uses_redis():
            return not pending or not _uses_redis()
        if not self._write(pending):
            with self._lock:
                for item, count in pending.items():
                    self._unflushed[item] = self._unflushed.get(item, 0) + count
            return False
        return True

    def _write(self, pending: dict[tuple[str, str], int]) -> bool:
        breaker = breaker_for(str(settings.CACHES["default"]["LOCATION"]))
        if not breaker.allow():
            return False
        try:
            pipe = _raw_redis().pipeline(transaction=False)
            for (family, field), count in pending.items():
                pipe.hincrby(self._stats_key(), f"{family}:{field}", count)
            pipe.execute()
        except Exception as error:  # noqa: BLE001 - any Redis failure means "try later"
            breaker.record_failure(error)
            return False
        breaker.record_success()
        return True

    def totals(self) -> dict[str, Any]:
        """Totals per family: over every process when Redis answers, else this process's."""
        shared = self.flush() and _uses_redis()
        counts: dict[tuple[str, str], int] = {}
        if shared:
            try:
                raw = _raw_redis().hgetall(self._stats_key())
                for name, value in raw.items():
                    family, field = (name.decode() if isinstance(name, bytes) else name).split(":")
                    counts[family, field] = int(value)
            except Exception:  # noqa: BLE001
                shared = False
        if not shared:
            with self._lock:
                counts = dict(self._local)
        families: dict[str, dict[str, Any]] = {}
        for family in Family:
            row: dict[str, Any] = {field: counts.get((family.value, field), 0) for field in _FIELDS}
            lookups = sum(row.values())
            row["hit_ratio"] = round(row["hits"] / lookups, 4) if lookups else None
            families[family.value] = row
        return {
            "scope": "all processes" if shared else "this process",
            "backend": "redis" if _uses_redis() else "local memory",
            "families": families,
        }

    def reset(self) -> None:
        with self._lock:
            self._unflushed.clear()
            self._local.clear()
        if _uses_redis():
            with contextlib.suppress(Exception):
                _raw_redis().delete(self._stats_key())


def _raw_redis() -> Any:
    return get_redis_connection("default")


stats = CacheStats()
