"""In-process figures for bench/run.py (run with its environment): the SQL of one message from
a returning customer with a warm cache, and cached lookups against the same from PostgreSQL."""

import os
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbridge.settings")

import django

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.run import body_for, signature  # noqa: E402
from chatbridge.cache import (  # noqa: E402
    active_room_cache_key,
    cache_get_many,
    customer_cache_key,
    watson_session_cache_key,
)
from rooms.models import Room  # noqa: E402
from rooms.selectors import room_open_get  # noqa: E402
from users.models import Customer  # noqa: E402
from watson.models import WatsonSession  # noqa: E402

UID = "573100000007"  # warmed by bench/run.py


def row(*cells: str) -> None:
    print("ROW\t" + "\t".join(cells))


def post(client: Client) -> None:
    body = body_for(UID, "consulta")
    response = client.post(
        "/whatsapp/external",
        data=body,
        content_type="application/json",
        HTTP_X_HUB_SIGNATURE_256=signature(body),
        HTTP_HOST="127.0.0.1",
    )
    assert response.status_code == 200, response.content


def queries_per_message() -> None:
    client = Client()
    post(client)  # fills anything the warm-up left cold
    with CaptureQueriesContext(connection) as captured:
        post(client)
    kinds = Counter(re.match(r"\s*(\w+)", q["sql"]).group(1).upper() for q in captured)
    cached_reads = [
        q["sql"]
        for q in captured
        if q["sql"].startswith("SELECT")
        and re.search(r'FROM "(users_customer|rooms_room|watson_)', q["sql"])
    ]
    row(
        "PostgreSQL statements per message, returning customer, warm cache (webhook, database mode)",
        "—",
        ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
        + f"; reads of cached rows: {len(cached_reads)}",
        "no read of a cached row; one transaction; ≤ 2 INSERTs beyond the ordering lock",
    )


def timed(function, repeat: int = 2000) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=100)[94]


def lookups() -> None:
    customer = Customer.objects.get(uid=UID)
    room = Room.objects.exclude(status="closed").get(customer=customer)
    families = {
        "customer": (
            lambda: cache_get_many([customer_cache_key(provider="whatsapp", uid=UID)]),
            lambda: Customer.objects.get(provider="whatsapp", uid=UID),
        ),
        "active room": (
            lambda: cache_get_many([active_room_cache_key(provider="whatsapp", uid=UID)]),
            lambda: room_open_get(customer_id=customer.pk),
        ),
        "watson session": (
            lambda: cache_get_many([watson_session_cache_key(room_id=room.pk)]),
            lambda: WatsonSession.objects.filter(room_id=room.pk).first(),
        ),
    }
    for family, (cached, database) in families.items():
        cached_p50, cached_p95 = timed(cached)
        db_p50, db_p95 = timed(database)
        row(
            f"{family} lookup, cache vs PostgreSQL (p50 / p95)",
            f"ADR-012: 2–5 ms vs 20–50 ms; PostgreSQL here {db_p50:.3f} / {db_p95:.3f} ms",
            f"cache {cached_p50:.3f} / {cached_p95:.3f} ms ({db_p50 / cached_p50:.1f}× faster)",
            "report both and the ratio",
        )


if __name__ == "__main__":
    queries_per_message()
    lookups()
