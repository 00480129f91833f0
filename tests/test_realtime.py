"""rooms/realtime.py: publishing from sync code (WSGI workers, the task worker) through the
process's publisher thread: in order, and never making the publisher wait for the layer."""

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from channels.layers import get_channel_layer
from prometheus_client import REGISTRY

from rooms import realtime
from tests.servers import RedisServer


def _layer_config(url: str) -> dict:
    return {
        "default": {
            "BACKEND": "chatbridge.channel_layer.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": url, "socket_timeout": 15, "socket_connect_timeout": 1}],
                "prefix": "chatbridge-realtime-test",
                "capacity": 1000,
            },
        }
    }


@pytest.fixture
def private_layer(settings) -> Iterator[RedisServer]:
    server = RedisServer().start()
    settings.CHANNEL_LAYERS = _layer_config(server.url)  # Channels drops its cached layer
    yield server
    realtime.flush(5)
    server.cleanup()


def _failures() -> float:
    return REGISTRY.get_sample_value("chatbridge_channel_layer_publish_failures_total") or 0.0


def _join(group: str) -> str:
    async def join() -> str:
        layer = get_channel_layer()
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    return asyncio.run(join())


def _receive(channel: str, count: int) -> list[dict]:
    async def receive() -> list[dict]:
        layer = get_channel_layer()
        return [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(count)]

    return asyncio.run(receive())


def test_publishes_from_a_plain_thread_arrive_in_order(private_layer):
    channel = _join("room.1")

    def worker() -> None:  # no event loop here, as in a WSGI worker or db_worker
        for n in range(300):
            realtime.publish("room.1", {"type": "room.event", "n": n})

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert realtime.flush(10)
    assert [m["n"] for m in _receive(channel, 300)] == list(range(300))


def test_a_layer_that_never_answers_does_not_hold_the_caller(private_layer):
    before = _failures()
    private_layer.pause()  # accepts connections, answers nothing
    try:
        started = time.monotonic()
        for n in range(3):
            realtime.publish("room.1", {"type": "room.event", "n": n})
        spent = time.monotonic() - started
        # Each of these would have waited PUBLISH_TIMEOUT (2 s) for the layer before.
        assert spent < 0.5, f"publishing took {spent:.2f} s"
        assert realtime.flush(3 * realtime.PUBLISH_TIMEOUT + 5)
    finally:
        private_layer.resume()
    assert _failures() - before == 3


def test_publishing_resumes_when_the_layer_is_back(private_layer):
    private_layer.stop()
    realtime.publish("room.1", {"type": "room.event", "n": 0})
    assert realtime.flush(10)
    private_layer.start()
    channel = _join("room.1")
    realtime.publish("room.1", {"type": "room.event", "n": 1})
    assert realtime.flush(10)
    assert [m["n"] for m in _receive(channel, 1)] == [1]
