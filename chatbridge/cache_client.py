"""A django-redis client that fails fast while Redis is down, and heals by itself.

IGNORE_EXCEPTIONS turns a Redis error into a cache miss, but every call still waits for the
socket to fail: with an address that drops packets that is the full connect timeout on every
lookup. This client keeps one circuit breaker per Redis location and process. After a failure
it skips Redis for `CACHE_BREAKER_SECONDS`, then lets a single call probe it; when the probe
succeeds the cache is in use again. The original system gave up after 10 reconnects and stayed
off until restart; this one never gives up.

Deletes that could not reach Redis are remembered and replayed when it comes back, so a flush
missed during an outage does not leave a stale key behind once Redis returns with its old data.
"""

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django_redis.client import DefaultClient
from django_redis.exceptions import ConnectionInterrupted

logger = logging.getLogger("chatbridge.cache")

_PENDING_DELETES_LIMIT = 10_000


class CircuitBreaker:
    """Closed: calls go through. Open: calls are skipped until `open_until`, then one probes."""

    def __init__(self, *, window: float) -> None:
        self.window = window
        self._open_until = 0.0
        self._lock = threading.Lock()
        self._pending_deletes: set[str] = set()

    @property
    def is_open(self) -> bool:
        return self._open_until != 0.0

    def allow(self) -> bool:
        if self._open_until == 0.0:
            return True
        with self._lock:
            now = time.monotonic()
            if self._open_until != 0.0 and now >= self._open_until:
                # This caller probes; everyone else keeps skipping until it reports back.
                self._open_until = now + self.window
                return True
        return False

    def record_failure(self, error: BaseException) -> None:
        with self._lock:
            was_closed = self._open_until == 0.0
            self._open_until = time.monotonic() + self.window
        if was_closed:
            logger.warning(
                "cache unavailable, running without it for %.1fs at a time: %s",
                self.window,
                error.__cause__ or error,
            )

    def record_success(self) -> list[str]:
        """Close the breaker; return the deletes to replay if it was open."""
        if self._open_until == 0.0:
            return []
        with self._lock:
            self._open_until = 0.0
            pending, self._pending_deletes = list(self._pending_deletes), set()
        logger.info("cache available again; replaying %d missed deletes", len(pending))
        return pending

    def remember_deletes(self, keys: Iterable[str]) -> None:
        with self._lock:
            if len(self._pending_deletes) < _PENDING_DELETES_LIMIT:
                self._pending_deletes.update(keys)


# One breaker per Redis location for the whole process: Django builds a cache backend (and so
# a client) per thread, but an outage is a fact about the server, not about a thread.
_breakers: dict[str, CircuitBreaker] = {}
_breakers_lock = threading.Lock()
_last_call = threading.local()


def breaker_for(location: str) -> CircuitBreaker:
    with _breakers_lock:
        if location not in _breakers:
            _breakers[location] = CircuitBreaker(window=settings.CACHE_BREAKER_SECONDS)
        return _breakers[location]


def last_call_failed() -> bool:
    """Whether this thread's last cache call failed or was skipped (an error, not a miss)."""
    return getattr(_last_call, "failed", False)


class FailSafeRedisClient(DefaultClient):
    def __init__(self, server: Any, params: dict[str, Any], backend: Any) -> None:
        super().__init__(server, params, backend)
        location = server if isinstance(server, str) else ",".join(server)
        self.breaker = breaker_for(location)

    def _guarded(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if getattr(_last_call, "depth", 0):
            # django-redis calls its own methods (add -> set, set -> delete): already guarded.
            return call(*args, **kwargs)
        if not self.breaker.allow():
            _last_call.failed = True
            raise ConnectionInterrupted(connection=None)
        _last_call.depth = 1
        try:
            result = call(*args, **kwargs)
        except ConnectionInterrupted as error:
            _last_call.failed = True
            self.breaker.record_failure(error)
            raise
        finally:
            _last_call.depth = 0
        _last_call.failed = False
        missed = self.breaker.record_success()
        if missed:
            self._replay_deletes(missed)
        return result

    def _replay_deletes(self, keys: list[str]) -> None:
        try:
            super().delete_many(keys)
        except ConnectionInterrupted as error:
            self.breaker.remember_deletes(keys)
            self.breaker.record_failure(error)

    def _guarded_delete(
        self, call: Callable[..., Any], keys: list[str], *args: Any, **kw: Any
    ) -> Any:
        try:
            return self._guarded(call, *args, **kw)
        except ConnectionInterrupted:
            self.breaker.remember_deletes(keys)
            raise

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().get, *args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().get_many, *args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().set, *args, **kwargs)

    def set_many(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().set_many, *args, **kwargs)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().add, *args, **kwargs)

    def incr(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().incr, *args, **kwargs)

    def has_key(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().has_key, *args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().touch, *args, **kwargs)

    def delete(self, key: str, *args: Any, **kwargs: Any) -> Any:
        return self._guarded_delete(super().delete, [key], key, *args, **kwargs)

    def delete_many(self, keys: Any, *args: Any, **kwargs: Any) -> Any:
        keys = list(keys)
        return self._guarded_delete(super().delete_many, keys, keys, *args, **kwargs)

    def delete_pattern(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().delete_pattern, *args, **kwargs)

    def clear(self, *args: Any, **kwargs: Any) -> Any:
        return self._guarded(super().clear, *args, **kwargs)
