"""The only code that talks to the channel layer from views, services and task workers.

Everything is published after the transaction commits, and a channel-layer failure is logged and
swallowed: the data is in PostgreSQL, and an agent who missed an event gets it on reconnect or
on the next gap in the room's sequence (see RoomEvent).

Groups:
- `agents`: every connected agent; the queue changes here.
- `agent.<user id>`: one agent's consoles; assignment and transfer of rooms to them.
- `room.<room id>`: the consoles of the agent the room is assigned to.
"""

import asyncio
import atexit
import logging
import os
import threading
import time
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer, get_channel_layer

from chatbridge.metrics import LAYER_PUBLISH_FAILURES

logger = logging.getLogger("chatbridge.realtime")

AGENTS_GROUP = "agents"
# Supervisors' consoles (alerts).
SUPERVISORS_GROUP = "supervisors"
# A publish that takes longer than this is abandoned and counted as failed.
PUBLISH_TIMEOUT = 2.0
# Publishes waiting for the publisher thread; beyond this (the layer is down and the backlog
# grows) new ones are dropped and counted: agents catch up from PostgreSQL.
BACKLOG_LIMIT = 10_000


def agent_group_name(user_id: int) -> str:
    return f"agent.{user_id}"


def room_group_name(room_id: int) -> str:
    return f"room.{room_id}"


def publish(group: str, message: dict[str, Any]) -> None:
    """Hand `message` to the channel layer without making the caller wait for Redis.

    The Redis layer's publishes go through this process's publisher thread, in the order they were
    made. The in-memory layer (the embedded run) only works on the event loop of the process's
    consumers, which `async_to_sync` reaches from Daphne's worker threads: it is called directly.
    """
    layer = get_channel_layer()
    if layer is None:
        return
    if isinstance(layer, InMemoryChannelLayer):
        try:
            async_to_sync(_send)(layer, group, message)
        except Exception as error:  # noqa: BLE001 - the data is safe in PostgreSQL
            _failed(group, error)
        return
    _publisher.submit(layer, group, message)


def flush(timeout: float = 5.0) -> bool:
    """Wait until every publish made so far has been sent or has failed (tests, shutdown)."""
    return _publisher.flush(timeout)


async def _send(layer: Any, group: str, message: dict[str, Any]) -> None:
    await asyncio.wait_for(layer.group_send(group, message), timeout=PUBLISH_TIMEOUT)


def _failed(group: str, error: BaseException) -> None:
    LAYER_PUBLISH_FAILURES.inc()
    logger.warning("channel layer publish to %s failed: %r", group, error)


class _Publisher:
    """One thread per process with its own event loop and layer connection, sending in order.

    `async_to_sync(group_send)` from a thread without an event loop (a WSGI worker, the task
    worker) builds a new loop and a new Redis connection for every call: 3.7 ms each on this kind
    of machine (performance-floor.md). Here the loop and the connection live as long as the
    process; a publish costs the caller one thread-safe queue put.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._pending = 0  # submitted and not yet finished; guarded by _lock
        self._idle = threading.Condition(self._lock)

    def submit(self, layer: Any, group: str, message: dict[str, Any]) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked child (a gunicorn worker)
                self._start()
            if self._pending >= BACKLOG_LIMIT:
                dropped = True
            else:
                dropped = False
                self._pending += 1
                loop, work = self._running()
                loop.call_soon_threadsafe(work.put_nowait, (layer, group, message))
        if dropped:
            _failed(group, RuntimeError("publish backlog full"))

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(loop)
            self._queue = asyncio.Queue()
            ready.set()
            loop.run_until_complete(self._work())

        self._pid, self._loop, self._pending = os.getpid(), loop, 0
        threading.Thread(target=run, name="channel-layer-publisher", daemon=True).start()
        ready.wait()

    def _running(self) -> tuple[asyncio.AbstractEventLoop, asyncio.Queue]:
        """The publisher thread's loop and queue (set by `_start`, before any submit uses them)."""
        if self._loop is None or self._queue is None:
            raise RuntimeError("the publisher thread has not started")
        return self._loop, self._queue

    async def _work(self) -> None:
        _, work = self._running()
        while True:
            layer, group, message = await work.get()
            try:
                await _send(layer, group, message)
            except Exception as error:  # noqa: BLE001 - the data is safe in PostgreSQL
                _failed(group, error)
            with self._idle:
                self._pending -= 1
                if not self._pending:
                    self._idle.notify_all()


_publisher = _Publisher()
# A task worker that stops gracefully sends what it has published before it exits.
atexit.register(flush, 2.0)
