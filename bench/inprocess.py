"""In-process figures for bench/run.py (run with its environment).

inprocess.py          the SQL of one message from a returning customer with a warm cache, and
                      cached lookups against the same from PostgreSQL (ROW lines)
inprocess.py floor    the floor's pieces: 3 redis-py GETs, a psycopg 2-INSERT transaction, a
                      raw PUBLISH to a subscriber (FLOOR lines: name p50 p95 in ms)
inprocess.py agent    makes the benchmark's agent; prints a session cookie for its consoles
inprocess.py search   the agents' search and customer panel over SEARCH_MESSAGES generated
                      messages in closed conversations (ROW lines)
inprocess.py lines    the webhook with three more WhatsApp numbers registered, and the registry's
                      read (ROW lines)
inprocess.py reports  the admin's reports page over REPORT_ROOMS generated rooms of a quarter,
                      and presence on the heartbeat (ROW lines; bench/reports.py)
"""

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

from bench.reports import measure as reports_measure  # noqa: E402
from bench.run import body_for, signature  # noqa: E402
from chatbridge.cache import (  # noqa: E402
    active_room_cache_key,
    cache_get_many,
    customer_cache_key,
    watson_session_cache_key,
)
from rooms.inbound.selectors import room_open_get  # noqa: E402
from rooms.models import Room  # noqa: E402
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
    # A round trip may carry several statements (chatbridge/statements.py), and a WITH several writes.
    statements = [s for q in captured for s in q["sql"].split(";\n")]
    kinds: Counter[str] = Counter()
    for statement in statements:
        head = re.match(r"\s*(\w+)", statement).group(1).upper()
        if "pg_advisory" in statement:
            kinds["lock"] += 1
        elif head == "WITH":
            kinds["UPDATE"] += len(re.findall(r"\bUPDATE \"", statement))
            kinds["INSERT"] += len(re.findall(r"\bINSERT INTO\b", statement))
        else:
            kinds[head] += 1
    cached_reads = [
        s
        for s in statements
        if s.lstrip().startswith("SELECT")
        and re.search(r'FROM "(users_customer|rooms_room|watson_)', s)
    ]
    row(
        "PostgreSQL statements per message, returning customer, warm cache (webhook, database mode)",
        "—",
        f"{len(captured)} round trip(s): "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
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


def lines_cost() -> None:
    """What several WhatsApp numbers add to the webhook: the registry read every POST makes
    (one cache entry), and the in-process webhook with none and with three numbers registered
    (their secrets tried on each POST), in alternating rounds."""
    from rooms.lines import lines
    from rooms.models import WhatsAppNumber

    registry_p50, registry_p95 = timed(lines)
    client = Client()
    samples: dict[str, list[float]] = {"none": [], "three": []}
    for index in range(3):
        os.environ[f"BENCH_LINE_TOKEN_{index}"] = f"token-{index}"
        os.environ[f"BENCH_LINE_SECRET_{index}"] = f"secret-{index}"
    for _ in range(4):
        for label in ("none", "three"):
            WhatsAppNumber.objects.filter(name__startswith="bench line").delete()
            if label == "three":
                for index in range(3):
                    WhatsAppNumber.objects.create(
                        phone_number_id=f"90000000000000{index}",
                        name=f"bench line {index}",
                        token_env=f"BENCH_LINE_TOKEN_{index}",
                        app_secret_env=f"BENCH_LINE_SECRET_{index}",
                    )
            post(client)  # the registry's entry refilled
            for _ in range(150):
                started = time.perf_counter()
                post(client)
                samples[label].append((time.perf_counter() - started) * 1000)
    WhatsAppNumber.objects.filter(name__startswith="bench line").delete()
    base = statistics.median(samples["none"])
    three = statistics.median(samples["three"])
    row(
        "webhook in process (store + enqueue), three more WhatsApp numbers registered (p50)",
        f"main number only {base:.2f} ms; registry read {registry_p50:.3f} / "
        f"{registry_p95:.3f} ms p50 / p95",
        f"{three:.2f} ms ({three / base:.2f}×)",
        "within noise",
    )


def floor() -> None:
    import threading

    import psycopg
    import redis

    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for key in ("floor:a", "floor:b", "floor:c"):
        client.set(key, b"x" * 200)
    gets = timed(lambda: [client.get(key) for key in ("floor:a", "floor:b", "floor:c")])
    print(f"FLOOR 3 Redis GETs {gets[0]:.3f} {gets[1]:.3f}")

    with psycopg.connect(os.environ["DATABASE_URL"]) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, room integer,"
            " body text, created timestamptz NOT NULL DEFAULT now())"
        )
        conn.commit()

        def two_inserts() -> None:
            with conn.transaction():
                conn.execute("INSERT INTO bench_floor (room, body) VALUES (%s, %s)", (1, "in"))
                conn.execute("INSERT INTO bench_floor (room, body) VALUES (%s, %s)", (1, "out"))

        inserts = timed(two_inserts, repeat=1000)
        conn.execute("DROP TABLE bench_floor")
        conn.commit()
    print(f"FLOOR 2-INSERT transaction {inserts[0]:.3f} {inserts[1]:.3f}")

    subscriber = redis.Redis.from_url(os.environ["REDIS_URL"]).pubsub()
    subscriber.subscribe("floor")
    subscriber.get_message(timeout=1)  # the subscribe confirmation
    received = threading.Event()

    def listen() -> None:
        for item in subscriber.listen():
            if item["type"] == "message":
                if item["data"] == b"stop":
                    return
                received.set()

    threading.Thread(target=listen, daemon=True).start()

    def publish() -> None:
        received.clear()
        client.publish("floor", b"x" * 200)
        received.wait(1)

    published = timed(publish, repeat=1000)
    client.publish("floor", b"stop")
    print(f"FLOOR PUBLISH to a subscriber {published[0]:.3f} {published[1]:.3f}")


def agent() -> None:
    from django.contrib.auth.models import Group, User

    from users.models import AgentProfile

    user, _ = User.objects.get_or_create(username="bench-agent", defaults={"first_name": "Bench"})
    user.groups.add(Group.objects.get_or_create(name="agents")[0])
    AgentProfile.objects.update_or_create(user=user, defaults={"capacity": 50})
    client = Client()
    client.force_login(user)
    print(client.cookies["sessionid"].value)


SEARCH_MESSAGES = int(os.environ.get("SEARCH_MESSAGES", "100000"))
# A vocabulary of a bank's help desk; each message is a few of its words.
WORDS = [
    "hola",
    "buenos",
    "días",
    "tardes",
    "quiero",
    "necesito",
    "consultar",
    "saldo",
    "cuenta",
    "ahorro",
    "corriente",
    "tarjeta",
    "crédito",
    "débito",
    "bloquear",
    "desbloquear",
    "clave",
    "olvidé",
    "perdí",
    "robo",
    "transferencia",
    "pago",
    "recibo",
    "factura",
    "préstamo",
    "hipoteca",
    "cuota",
    "interés",
    "tasa",
    "plazo",
    "seguro",
    "oficina",
    "horario",
    "cajero",
    "retiro",
    "depósito",
    "extracto",
    "movimientos",
    "cobro",
    "comisión",
    "reclamo",
    "devolución",
    "aplicación",
    "acceso",
    "usuario",
    "contraseña",
    "token",
    "correo",
    "teléfono",
    "dirección",
    "cambio",
    "datos",
    "gracias",
    "ayuda",
    "favor",
    "urgente",
    "hoy",
    "mañana",
    "ayer",
    "semana",
    "mes",
    "valor",
    "monto",
    "pesos",
    "dólares",
    "cancelar",
    "activar",
    "renovar",
    "vencida",
]


def search() -> None:
    """Closed conversations as a year of a help desk leaves them: SEARCH_MESSAGES messages in
    rooms of 20, among 10 agents; then the search as an agent and as staff, by a common word,
    a rare one and a number, and the customer panel's query."""
    import random

    from django.contrib.auth.models import Group, Permission, User
    from django.utils import timezone

    from rooms.desk.history import conversations_search, customer_rooms
    from rooms.models import Message

    rng = random.Random(12)
    agents_group = Group.objects.get_or_create(name="agents")[0]
    agents = []
    for n in range(10):
        agent, _ = User.objects.get_or_create(username=f"search-agent-{n}")
        agent.groups.add(agents_group)
        agents.append(agent)
    rooms_wanted = SEARCH_MESSAGES // 20
    customers = Customer.objects.bulk_create(
        Customer(uid=f"5741{n:08d}", wa_id=f"5741{n:08d}", name=f"Cliente {n}")
        for n in range(rooms_wanted)
    )
    now = timezone.now()
    rooms = Room.objects.bulk_create(
        Room(
            customer=customer,
            status=Room.Status.CLOSED,
            agent=agents[n % len(agents)],
            closed_at=now,
            closed_reason="Resuelto",
        )
        for n, customer in enumerate(customers)
    )
    for start in range(0, len(rooms), 250):

        def sentence(index: int) -> str:
            words = rng.sample(WORDS, rng.randint(4, 14))
            if index % 997 == 0:
                words.append("certificado")  # the rare word: 0.1 % of messages
            return " ".join(words)

        Message.objects.bulk_create(
            Message(
                room=room,
                direction="in" if i % 2 == 0 else "out",
                author="customer" if i % 2 == 0 else "agent",
                agent=None if i % 2 == 0 else room.agent,
                text=sentence(room.pk * 20 + i),
                status="" if i % 2 == 0 else "read",
            )
            for room in rooms[start : start + 250]
            for i in range(20)
        )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE rooms_message; ANALYZE rooms_room; ANALYZE users_customer")
    staff, _ = User.objects.get_or_create(username="search-staff", defaults={"is_staff": True})
    staff.user_permissions.add(Permission.objects.get(codename="view_message"))
    staff = User.objects.get(pk=staff.pk)  # its permissions read afresh
    held = Room.objects.create(customer=customers[0], status="assigned", agent=agents[0])
    cases = [
        ("an agent, a common word (tarjeta)", agents[0], "tarjeta"),
        ("staff, a common word (tarjeta)", staff, "tarjeta"),
        ("staff, two words (bloquear tarjeta)", staff, "bloquear tarjeta"),
        ("staff, a rare word (certificado)", staff, "certificado"),
        ("staff, part of a number", staff, "4100004321"),
        ("staff, a name", staff, "cliente 4321"),
    ]
    total = Message.objects.count()
    for label, user, text in cases:
        p50, p95 = timed(
            lambda user=user, text=text: conversations_search(user=user, text=text), repeat=30
        )
        hits = len(conversations_search(user=user, text=text))
        row(
            f"agents' search over {total:,} messages: {label} (p50 / p95)",
            "—",
            f"{p50:.1f} / {p95:.1f} ms ({hits} results shown)",
            "< 100 ms",
        )
    index_cost()
    p50, p95 = timed(lambda: customer_rooms(room_id=held.pk, agent_id=agents[0].pk), repeat=100)
    row(
        "customer panel's earlier conversations (one query; p50 / p95)",
        "—",
        f"{p50:.2f} / {p95:.2f} ms",
        "one query per opened room",
    )


def index_cost() -> None:
    """What the search's index adds to the webhook: the in-process webhook (store, enqueue) timed
    with and without it, in alternating rounds, over the generated messages."""
    import importlib

    migration = importlib.import_module("rooms.migrations.0012_message_search")
    create = f"CREATE INDEX message_text_search ON rooms_message USING gin ({migration.EXPRESSION})"
    client = Client()
    samples: dict[str, list[float]] = {"with": [], "without": []}
    for _ in range(4):
        for label in ("with", "without"):
            with connection.cursor() as cursor:
                cursor.execute("DROP INDEX IF EXISTS message_text_search")
                if label == "with":
                    cursor.execute(create)
            for _ in range(150):
                started = time.perf_counter()
                post(client)
                samples[label].append((time.perf_counter() - started) * 1000)
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS message_text_search")
        cursor.execute(create)  # as the migration left it
    base = statistics.median(samples["without"])
    indexed = statistics.median(samples["with"])
    row(
        "webhook in process (store + enqueue) with the search index (p50)",
        f"without it {base:.2f} ms",
        f"{indexed:.2f} ms ({indexed / base:.2f}×)",
        "within noise",
    )


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "floor":
        floor()
    elif command == "agent":
        agent()
    elif command == "search":
        search()
    elif command == "lines":
        lines_cost()
    elif command == "reports":
        reports_measure(row)
    else:
        queries_per_message()
        lookups()
