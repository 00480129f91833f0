"""The channel layer's receive stops when it is cancelled, however the cancellation lands.

A websocket that closes cancels its consumer's receive. On Python 3.11 a cancellation that lands as
redis-py finishes sending a command was lost and the receive polled Redis forever (16 of 300 in a
measurement with the stock layer). The receives here poll every 10 ms, so cancellations land in
every phase of the loop."""

import asyncio
import random

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from chatbridge.channel_layer import RedisChannelLayer

pytestmark = pytest.mark.asyncio

ATTEMPTS = 240


def polling_layer() -> RedisChannelLayer:
    layer = RedisChannelLayer(**settings.CHANNEL_LAYERS["default"]["CONFIG"])
    layer.brpop_timeout = 0.01  # BZPOPMIN takes fractions of a second
    return layer


async def test_the_configured_layer_is_the_cancel_safe_one():
    assert isinstance(get_channel_layer(), RedisChannelLayer)


async def test_every_cancelled_receive_stops():
    """Cancelled as a closing websocket does it (once), and as a closing event loop and Channels'
    dispatcher do it together: every task at once, then the receive once more."""
    layer = polling_layer()
    rng = random.Random(20261128)
    still_running = 0
    for attempt in range(ATTEMPTS):
        receive = asyncio.ensure_future(layer.receive(await layer.new_channel()))
        await asyncio.sleep(rng.uniform(0, 0.02))
        if attempt % 2:
            cancelled = asyncio.all_tasks() - {asyncio.current_task()}
            for task in cancelled:
                task.cancel()
            await asyncio.sleep(rng.uniform(0, 0.002))
        else:
            cancelled = {receive}
        receive.cancel()
        _, pending = await asyncio.wait(cancelled, timeout=1)
        if pending:
            still_running += 1
            while pending:  # leave nothing behind for the loop's teardown
                for task in pending:
                    task.cancel()
                _, pending = await asyncio.wait(pending, timeout=0.05)
    await layer.close_pools()
    assert still_running == 0, f"{still_running} of {ATTEMPTS} cancelled receives kept running"


async def test_a_receive_that_is_not_cancelled_still_gets_its_message():
    layer = polling_layer()
    channel = await layer.new_channel()
    receive = asyncio.ensure_future(layer.receive(channel))
    await asyncio.sleep(0.05)
    await layer.send(channel, {"type": "ping", "n": 1})
    assert await asyncio.wait_for(receive, timeout=5) == {"type": "ping", "n": 1}
    await layer.close_pools()


async def test_a_receive_cancelled_while_a_cleanup_runs_leaves_no_lock_for_the_next_loop():
    """After each message channels-redis holds a per-process lock while it deletes the message's
    backup copy. A receive cancelled while waiting for it (a websocket closing then, likelier on a
    loaded machine) kept the lock, tied to this loop, forever; the next receive that had to wait
    for it on another loop (the next test's) raised "... is bound to a different event loop"."""
    layer = polling_layer()
    channel = await layer.new_channel()
    cleanups = layer.receive_clean_locks
    await _hold_cleanup(layer, channel)
    receive = await _receive_behind_the_cleanup(layer, channel)
    receive.cancel()
    await asyncio.gather(receive, return_exceptions=True)
    _end_cleanup(layer, channel)
    assert (dict(cleanups.locks), dict(cleanups.wait_counts)) == ({}, {})

    async def on_another_loop() -> dict:
        other = await layer.new_channel()  # the same process channel, so the same lock
        await layer.send(other, {"type": "ping"})
        await _hold_cleanup(layer, other)
        receive = await _receive_behind_the_cleanup(layer, other)
        _end_cleanup(layer, other)
        return await receive

    assert await asyncio.to_thread(asyncio.run, on_another_loop()) == {"type": "ping"}
    await layer.close_pools()


def _cleanup_key(layer: RedisChannelLayer, channel: str) -> str:
    return layer.prefix + layer.non_local_name(channel)


async def _hold_cleanup(layer: RedisChannelLayer, channel: str) -> None:
    """What the cleanup after a message does, for as long as the test wants."""
    await layer.receive_clean_locks.acquire(_cleanup_key(layer, channel))


def _end_cleanup(layer: RedisChannelLayer, channel: str) -> None:
    layer.receive_clean_locks.release(_cleanup_key(layer, channel))


async def _receive_behind_the_cleanup(layer: RedisChannelLayer, channel: str) -> asyncio.Future:
    """A receive, once it waits for the cleanup to end."""
    counts = layer.receive_clean_locks.wait_counts
    key = _cleanup_key(layer, channel)
    waiting = counts[key] + 1
    receive = asyncio.ensure_future(layer.receive(channel))
    # A waiter is counted in just before it waits, with no suspension in between.
    while counts[key] < waiting and not receive.done():
        await asyncio.sleep(0.001)
    return receive
