"""Measure the two channels-redis layers on this machine: group_send -> receive, one process.

    .venv/bin/python bench/channel_layers.py [--redis redis://127.0.0.1:6379/2] [--n 2000]

Prints p50/p95/p99 per layer and their ratio; the choice in docs/agent-protocol.md rests on it.
"""

import argparse
import asyncio
import statistics
import time

from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer


async def measure(layer, n: int) -> list[float]:
    channel = await layer.new_channel()
    await layer.group_add("bench", channel)
    for _ in range(50):  # warm the connections
        await layer.group_send("bench", {"type": "x"})
        await layer.receive(channel)
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        await layer.group_send("bench", {"type": "x"})
        await layer.receive(channel)
        samples.append((time.perf_counter() - started) * 1000)
    await layer.group_discard("bench", channel)
    return samples


def summary(samples: list[float]) -> tuple[float, float, float]:
    q = statistics.quantiles(samples, n=100)
    return statistics.median(samples), q[94], q[98]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/2")
    parser.add_argument("--n", type=int, default=2000)
    args = parser.parse_args()
    host = {"address": args.redis, "socket_timeout": 15}
    results = {}
    for name, cls in [("core", RedisChannelLayer), ("pubsub", RedisPubSubChannelLayer)]:
        layer = cls(hosts=[host], prefix=f"bench-{name}")
        results[name] = summary(await measure(layer, args.n))
        await layer.flush()
    for name, (p50, p95, p99) in results.items():
        print(
            f"{name:7s} group_send->receive  p50 {p50:.3f} ms  p95 {p95:.3f} ms  p99 {p99:.3f} ms"
        )
    core, pubsub = results["core"], results["pubsub"]
    print(f"core / pubsub: p50 {core[0] / pubsub[0]:.1f}x  p95 {core[1] / pubsub[1]:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
