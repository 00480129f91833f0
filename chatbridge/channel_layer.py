"""The Redis channel layer, with a receive that always honours cancellation and leaves nothing
bound to an event loop behind.

On Python 3.11, `asyncio.wait_for` returns the result instead of raising when the task is cancelled
in the same instant the awaited operation completes (fixed in 3.12). redis-py sends every command
through `wait_for` when a socket timeout is set, and channels-redis' receive loop keeps issuing
BZPOPMIN until a message comes, so a consumer whose websocket closed at that instant kept a task
and a Redis connection alive forever (and a test's event loop could not close). Measured before
this wrapper: 16 of 300 cancelled receives lost their cancellation.

The wrapper runs the layer's receive as an inner task and, when the caller is cancelled (once or
several times), cancels the inner task until it has really stopped.

After each message channels-redis holds a lock (one per process, shared by its consumers) while it
deletes the message's backup copy. A receive cancelled while it waited for that lock was never
counted out, so the lock was never dropped: it stayed for the life of the process, tied to the
event loop that had waited on it, and the next receive that had to wait for it on another loop
raised "... is bound to a different event loop", which killed its consumer. Every test has its own
loop (so does each `async_to_sync` call), and under load the cleanup takes longer, so a websocket
closing during it is likely. `_CleanupLocks` counts a cancelled waiter out: the lock goes as soon
as nobody holds it or waits for it.
"""

import asyncio
from typing import Any

from channels_redis.core import ChannelLock
from channels_redis.core import RedisChannelLayer as CoreRedisChannelLayer

# How long one cancellation of the inner receive gets before it is repeated.
_CANCEL_RETRY_SECONDS = 0.05


class _CleanupLocks(ChannelLock):
    async def acquire(self, channel: str) -> bool:
        try:
            return await super().acquire(channel)
        except BaseException:
            # Not acquired (cancelled while waiting, or failed): count this waiter out again.
            self._count_out(channel)
            raise

    def _count_out(self, channel: str) -> None:
        # As the stock release does after releasing.
        self.wait_counts[channel] -= 1
        if self.wait_counts[channel] < 1:
            del self.locks[channel]
            del self.wait_counts[channel]


class RedisChannelLayer(CoreRedisChannelLayer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.receive_clean_locks = _CleanupLocks()

    async def receive(self, channel: str) -> dict:
        inner = asyncio.ensure_future(super().receive(channel))
        try:
            return await asyncio.shield(inner)
        except asyncio.CancelledError:
            while not inner.done():
                inner.cancel()
                try:
                    await asyncio.wait({inner}, timeout=_CANCEL_RETRY_SECONDS)
                except asyncio.CancelledError:
                    # Cancelled again while stopping (Channels cancels a consumer's receive once
                    # more as it exits): keep going until the inner receive has stopped.
                    continue
            if not inner.cancelled():
                # Retrieved so asyncio does not log it; a message that arrived as the caller was
                # cancelled goes with the consumer that is stopping, as it would without this.
                inner.exception()
            raise
