"""Bursts and a bounded soak against real processes (loopback only, bounded in count and time).

CI runs the short form; `make reliability` the long one (BURST_CUSTOMERS=200, SOAK_SECONDS=180).
"""

import os
import statistics
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from django.db import connection

from rooms.models import Message, Room
from tests.payloads import message, notification, sign
from tests.servers import AppProcess, start_all, stop_all, wait_until
from users.models import Customer
from watson.models import WatsonSession

pytestmark = pytest.mark.django_db(transaction=True)

BURST_CUSTOMERS = int(os.environ.get("BURST_CUSTOMERS", "40"))
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
SOAK_RATE = float(os.environ.get("SOAK_RATE", "15"))  # messages per second


class Poster:
    """Signed webhooks over keep-alive connections, one session per thread."""

    def __init__(self) -> None:
        self.local = threading.local()

    def post(self, url: str, payload: dict) -> tuple[int, float]:
        import json

        session = getattr(self.local, "session", None)
        if session is None:
            session = self.local.session = requests.Session()
        body = json.dumps(payload).encode()
        started = time.perf_counter()
        response = session.post(
            f"{url}/whatsapp/external",
            data=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)},
            timeout=60,
        )
        return response.status_code, time.perf_counter() - started


@pytest.fixture
def two_servers(fake_vendors) -> Iterator[list[AppProcess]]:
    servers = start_all([AppProcess.daphne(DATABASE_POOL_MAX_SIZE="40") for _ in range(2)])
    yield servers
    stop_all(servers)


def test_burst_of_customers_each_writing_five_at_once(two_servers, whatsapp, record_fault):
    urls = [server.url for server in two_servers]
    base = int(time.time())
    jobs = [
        (f"5730{index:08d}", f"mensaje {n}", base + n)
        for index in range(BURST_CUSTOMERS)
        for n in range(5)
    ]
    poster = Poster()
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=64) as pool:
        results = list(
            pool.map(
                lambda job: poster.post(
                    urls[hash(job[0] + job[1]) % 2],
                    notification(messages=[message(job[0], job[1], timestamp=job[2])]),
                ),
                jobs,
            )
        )
    elapsed = time.perf_counter() - started

    codes = [code for code, _ in results]
    assert codes == [200] * len(jobs)
    assert Customer.objects.count() == BURST_CUSTOMERS
    assert Room.objects.count() == BURST_CUSTOMERS
    assert WatsonSession.objects.count() == BURST_CUSTOMERS
    stored: dict[str, list[str]] = defaultdict(list)
    for uid, text in (
        Message.objects.filter(direction="in")
        .order_by("id")
        .values_list("room__customer__uid", "text")
    ):
        stored[uid].append(text)
    replies: dict[str, list[str]] = defaultdict(list)
    for item in whatsapp.sent:
        replies[item["to"]].append(item["text"])
    for uid, texts in stored.items():
        assert len(texts) == 5
        assert replies[uid] == [f"Dijiste: {text}" for text in texts], uid  # order kept
    latencies = sorted(seconds for _, seconds in results)
    p95 = latencies[int(len(latencies) * 0.95)]
    median = statistics.median(latencies)
    record_fault(
        f"Burst: {BURST_CUSTOMERS} customers × 5 messages at once, 2 Daphne processes",
        done=f"{len(jobs)} signed webhooks from 64 concurrent connections",
        held="all 200; one room and one Watson session per customer; replies in order",
        figures=f"{len(jobs) / elapsed:.0f} msg/s, p50 {median * 1000:.0f} ms,"
        f" p95 {p95 * 1000:.0f} ms, 0 errors",
        times=len(jobs),
    )


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _db_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [connection.settings_dict["NAME"]],
        )
        return cursor.fetchone()[0]


def test_soak_steady_flow_two_servers_and_a_worker(fake_vendors, whatsapp, record_fault):
    processes = start_all(
        [AppProcess.daphne(TASKS_BACKEND="database") for _ in range(2)] + [AppProcess.worker()]
    )
    try:
        urls = [p.url for p in processes[:2]]
        poster = Poster()
        interval = 1 / SOAK_RATE
        sent = 0
        errors = 0
        customers = 50

        def send_for(seconds: float) -> None:
            nonlocal sent, errors
            deadline = time.monotonic() + seconds
            next_at = time.monotonic()
            with ThreadPoolExecutor(max_workers=8) as pool:
                futures = []
                while time.monotonic() < deadline:
                    uid = f"57399{sent % customers:07d}"
                    payload = notification(messages=[message(uid, f"soak {sent}")])
                    futures.append(pool.submit(poster.post, urls[sent % 2], payload))
                    sent += 1
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.monotonic()))
                errors += sum(1 for f in futures if f.result()[0] != 200)

        send_for(min(5.0, SOAK_SECONDS / 4))  # warm-up: pools, caches, sessions
        rss_start = {p.process.pid: _rss_kb(p.process.pid) for p in processes}
        fds_start = {p.process.pid: _fds(p.process.pid) for p in processes}
        send_for(SOAK_SECONDS)
        wait_until(
            lambda: not Message.objects.filter(direction="in", handled_at__isnull=True).exists(),
            timeout=60,
            what="every message answered",
        )
        rss_end = {p.process.pid: _rss_kb(p.process.pid) for p in processes}
        fds_end = {p.process.pid: _fds(p.process.pid) for p in processes}
        connections_end = _db_connections()

        assert errors == 0
        assert Message.objects.filter(direction="in").count() == sent  # nothing lost
        assert len(whatsapp.sent) == sent  # each answered once
        growth = {pid: rss_end[pid] - rss_start[pid] for pid in rss_end}
        assert all(kb < 40_000 for kb in growth.values()), growth  # no leak over the run
        assert all(fds_end[pid] - fds_start[pid] <= 10 for pid in fds_end), (fds_start, fds_end)
        assert connections_end <= 3 * 20
        record_fault(
            f"Soak: {SOAK_SECONDS:.0f} s at {SOAK_RATE:.0f} msg/s, 2 Daphne + 1 worker",
            done=f"{sent} messages from {customers} customers, database task mode",
            held="0 errors, 0 lost (rows = sent), each answered once, no growth",
            figures="RSS growth "
            + ", ".join(f"{kb / 1024:.1f} MB" for kb in growth.values())
            + f"; open fds Δ {[fds_end[p] - fds_start[p] for p in fds_end]};"
            f" PostgreSQL connections {connections_end}",
            times=sent,
        )
    finally:
        stop_all(processes)
