"""The reports page over a help desk's quarter (`bench/inprocess.py reports`, the last row of
`make bench`; alone: `make bench-reports`): REPORT_ROOMS generated rooms (100,000) over 90
days, 5 areas, 30 agents, with the events, messages, surveys and presence stretches chatbridge
writes for them; then the admin's reports page timed whole through Django's test client (the
default filters and filtered ones), against its two queries alone. Also the cost of recording
presence on a console's heartbeat. Prints ROW lines (bench/run.py's table).

Rows are written with COPY (a bulk_create of a million messages would take minutes): the
columns chatbridge itself fills, in the shapes its services write them.
"""

import datetime as dt
import json
import os
import random
import statistics
import time
import zoneinfo
from collections.abc import Callable, Iterator

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import connection
from django.test import Client
from django.utils import timezone

from rooms.desk.assignment import agent_seen
from rooms.models import Area, ClosureReason
from rooms.reports.forms import ReportFilters
from rooms.reports.selectors import report_read
from users.models import AgentProfile

DAYS = 90
AREA_NAMES = [
    ("general", "General"),
    ("tarjetas", "Tarjetas"),
    ("creditos", "Créditos"),
    ("cuentas", "Cuentas"),
    ("nivel-2", "Nivel 2"),
]
AGENTS_PER_AREA = 6
AGENT_NAMES = [
    "Ana Gómez",
    "Beto Ruiz",
    "Carla Díaz",
    "Diego Mora",
    "Elena Vargas",
    "Fabio Ríos",
    "Gloria Peña",
    "Hugo Castro",
    "Irene Soto",
    "Jaime León",
    "Karen Silva",
    "Luis Rojas",
    "Marta Cruz",
    "Néstor Gil",
    "Olga Ramos",
    "Pablo Vega",
    "Rosa Parra",
    "Samuel Ortiz",
    "Tania Reyes",
    "Ulises Navarro",
    "Valeria Suárez",
    "Walter Méndez",
    "Ximena Torres",
    "Yesid Ibáñez",
    "Zoe Aguilar",
    "Andrés Pardo",
    "Bianca Luna",
    "Camilo Rey",
    "Daniela Cano",
    "Esteban Mejía",
]
REASONS = ["Resuelto", "Información entregada", "Cambio de canal", "Cliente no responde", "Spam"]
INACTIVITY = "Inactividad del cliente"


class Quarter:
    """Rows of a generated quarter, ready for COPY."""

    def __init__(self, rooms: int, days: int = DAYS, seed: int = 13) -> None:
        self.rng = random.Random(seed)
        self.target, self.days = rooms, days
        self.zone = zoneinfo.ZoneInfo(settings.BUSINESS_TIMEZONE)
        self.now = timezone.now().replace(microsecond=0)
        self.rooms: list[tuple] = []
        self.messages: list[tuple] = []
        self.events: list[tuple] = []
        self.surveys: list[tuple] = []
        self.presences: list[tuple] = []
        self.customers = max(rooms // 3, 1)

    def seconds(self, median: float, spread: float = 0.9) -> float:
        return self.rng.lognormvariate(0, spread) * median

    def opening(self, day: dt.date) -> dt.datetime:
        """A moment of `day` in business hours, busier mid-morning and mid-afternoon."""
        hour = min(max(self.rng.choice([9.5, 15]) + self.rng.gauss(0, 2.5), 7), 21.9)
        local = dt.datetime.combine(day, dt.time(), tzinfo=self.zone) + dt.timedelta(hours=hour)
        return local.astimezone(dt.UTC)

    def build(self, areas: list[int], agents: dict[int, list[int]], reasons: list[int]) -> None:
        today = self.now.astimezone(self.zone).date()
        days = [today - dt.timedelta(days=n) for n in range(self.days - 1, -1, -1)]
        # Weekends are quieter; the counts add up to the target exactly.
        weights = [0.6 if day.weekday() >= 5 else 1.15 for day in days]
        counts = [int(self.target * w / sum(weights)) for w in weights]
        for index in range(self.target - sum(counts)):
            counts[index % len(counts)] += 1
        room_id = 0
        for day, count in zip(days, counts, strict=True):
            for _ in range(count):
                room_id += 1
                opened = self.opening(day)
                if opened > self.now - dt.timedelta(minutes=5):  # today's not yet come: earlier
                    opened = self.now - dt.timedelta(minutes=self.rng.uniform(5, 180))
                self.room(room_id, opened, areas, agents, reasons)
        for user_ids in agents.values():
            for user_id in user_ids:
                for day in days:
                    self.shift(user_id, day)

    def room(
        self,
        room_id: int,
        opened: dt.datetime,
        areas: list[int],
        agents: dict[int, list[int]],
        reasons: list[int],
    ) -> None:
        rng = self.rng
        events: list[tuple[str, dict, int | None, dt.datetime]] = []
        messages: list[tuple[str, str, int | None, dt.datetime]] = []
        at = opened
        for _ in range(rng.randint(1, 4)):  # the customer and the bot, back and forth
            messages.append(("in", "customer", None, at))
            at += dt.timedelta(seconds=rng.uniform(1, 3))
            messages.append(("out", "bot", None, at))
            at += dt.timedelta(seconds=rng.uniform(10, 60))
        area = rng.choices(areas, weights=[5, 3, 2, 2, 1][: len(areas)])[0]
        queued_at = assigned_at = closed_at = None
        agent = closed_by = reason_id = None
        reason = INACTIVITY
        status = "closed"
        if rng.random() < 0.42:  # the bot alone: the customer goes quiet, inactivity closes
            closed_at = at + dt.timedelta(minutes=7)
            area = None
        else:
            queued_at = at
            events.append(("room.queued", {"note": "", "area": area}, None, at))
            if rng.random() < 0.07:  # closed while waiting (out of hours)
                closed_at = at + dt.timedelta(seconds=self.seconds(600))
                reason = "Fuera del horario de atención"
            else:
                at += dt.timedelta(seconds=self.seconds(45, 1.1))
                agent = rng.choice(agents[area])
                how = rng.choice(["auto", "auto", "taken"])
                events.append(
                    (
                        "room.assigned",
                        {"agent": agent, "previous_agent": None, "how": how},
                        agent if how == "taken" else None,
                        at,
                    )
                )
                assigned_at = at
                first = at + dt.timedelta(seconds=self.seconds(35))
                at = first
                for _ in range(rng.randint(2, 6)):
                    messages.append(("out", "agent", agent, at))
                    at += dt.timedelta(seconds=self.seconds(40))
                    messages.append(("in", "customer", None, at))
                    at += dt.timedelta(seconds=self.seconds(30))
                if rng.random() < 0.08:  # handed to a colleague of the area
                    previous, agent = agent, rng.choice(agents[area])
                    events.append(
                        (
                            "room.assigned",
                            {"agent": agent, "previous_agent": previous, "how": "transferred"},
                            previous,
                            at,
                        )
                    )
                    assigned_at = at
                    at += dt.timedelta(seconds=self.seconds(60))
                    messages.append(("out", "agent", agent, at))
                if rng.random() < 0.8:
                    closed_at = at + dt.timedelta(seconds=self.seconds(60))
                    closed_by = agent
                    reason_id = rng.choice(reasons)
                    reason = REASONS[reasons.index(reason_id)]
                else:
                    closed_at = at + dt.timedelta(minutes=7)
        if closed_at > self.now:
            status = "assigned" if agent else "queued" if queued_at else "bot"
            closed_at, closed_by, reason, reason_id = None, None, "", None
        if status == "closed":
            events.append(
                ("room.closed", {"reason": reason, "by": closed_by}, closed_by, closed_at)
            )
        # Messages in the agents' rooms are room events too (message.new).
        for direction, author, by, when in messages:
            if queued_at is not None and when >= queued_at:
                events.append(("message.new", {"direction": direction, "author": author}, by, when))
        events.sort(key=lambda event: event[3])
        customer = room_id % self.customers + 1 if status == "closed" else self.customers + room_id
        last_customer = max(when for direction, _, _, when in messages if direction == "in")
        # The instants the room keeps of its first hand-off, assignment and agent message.
        firsts = {
            kind: min((e[3] for e in events if e[0] == kind and e[3] <= self.now), default=None)
            for kind in ("room.queued", "room.assigned")
        }
        answered = [m[3] for m in messages if m[1] == "agent" and m[3] <= self.now]
        self.rooms.append(
            (
                room_id,
                customer,
                status,
                agent,
                area,
                opened,
                queued_at,
                assigned_at,
                closed_at,
                closed_by,
                reason,
                reason_id,
                len(events),
                max(m[3] for m in messages),
                last_customer,
                firsts["room.queued"],
                firsts["room.assigned"],
                min(answered, default=None),
            )
        )
        for direction, author, by, when in messages:
            self.messages.append((room_id, direction, author, by, when))
        for seq, (kind, data, actor, when) in enumerate(events, start=1):
            self.events.append((room_id, seq, kind, json.dumps(data), actor, when))
        if status == "closed" and agent is not None and rng.random() < 0.75:
            self.survey(room_id, customer, closed_at)

    def survey(self, room_id: int, customer: int, started: dt.datetime) -> None:
        rng = self.rng
        answered = rng.random()
        nps = resolved = satisfaction = None
        comment, step, status = "", "nps", "expired"
        if answered < 0.62:
            nps = min(10, max(0, round(rng.gauss(8, 2.4))))
            step = "resolved"
            if answered < 0.5:
                resolved, step = rng.random() < 0.8, "satisfaction"
                if answered < 0.45:
                    satisfaction = min(5, max(1, round(rng.gauss(4, 1))))
                    step, status = "comment", "completed"
                    comment = "Gracias" if rng.random() < 0.3 else ""
        ended = started + dt.timedelta(minutes=rng.uniform(1, 60))
        self.surveys.append(
            (
                room_id,
                customer,
                status,
                step,
                nps,
                resolved,
                satisfaction,
                comment,
                started,
                started,
                ended,
            )
        )

    def shift(self, user_id: int, day: dt.date) -> None:
        """A working day of an agent: a morning and an afternoon online, some of it with the
        switch off; a day off now and then."""
        rng = self.rng
        if rng.random() < (0.5 if day.weekday() >= 5 else 0.12):
            return
        start = dt.datetime.combine(day, dt.time(), tzinfo=self.zone) + dt.timedelta(
            hours=rng.uniform(7, 9)
        )
        for length in (rng.uniform(3, 4.5), rng.uniform(3, 4.5)):
            end = start + dt.timedelta(hours=length)
            pause = start + dt.timedelta(hours=rng.uniform(1, length - 0.5))
            pause_end = pause + dt.timedelta(minutes=rng.uniform(5, 25))
            for available, begins, ends in (
                (True, start, pause),
                (False, pause, pause_end),
                (True, pause_end, end),
            ):
                if begins >= self.now:
                    return
                ended = min(ends, self.now)
                self.presences.append(
                    (user_id, available, begins, ended, ended if ended < self.now else None)
                )
            start = end + dt.timedelta(hours=rng.uniform(0.5, 1.5))


def _copy(table: str, columns: str, rows: list[tuple]) -> None:
    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def generate(rooms: int, days: int = DAYS) -> dict[str, int]:
    """Areas, agents (with a supervisor and an operator to read the page) and REPORT_ROOMS
    rooms with everything they leave behind, written with COPY; then ANALYZE."""
    areas = [
        Area.objects.get_or_create(
            code=code, defaults={"name": name, "position": n, "is_default": n == 0}
        )[0]
        for n, (code, name) in enumerate(AREA_NAMES)
    ]
    group = Group.objects.get_or_create(name="agents")[0]
    agents: dict[int, list[int]] = {}
    names = iter(AGENT_NAMES)
    for area in areas:
        agents[area.pk] = []
        for _ in range(AGENTS_PER_AREA):
            first, last = next(names).split()
            user, _ = User.objects.get_or_create(
                username=f"{first}.{last}".lower(),
                defaults={"first_name": first, "last_name": last},
            )
            user.groups.add(group)
            AgentProfile.objects.get_or_create(user=user)
            area.agents.add(user)
            agents[area.pk].append(user.pk)
    reasons = [ClosureReason.objects.get_or_create(title=title)[0].pk for title in REASONS]
    quarter = Quarter(rooms, days)
    quarter.build([area.pk for area in areas], agents, reasons)
    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM users_customer")
        (offset,) = cursor.fetchone()
        cursor.execute("SELECT COALESCE(MAX(id), 0) FROM rooms_room")
        (room_offset,) = cursor.fetchone()
    customers = quarter.customers + rooms
    _copy(
        "users_customer",
        "id, provider, uid, wa_id, user_id, name, name_edited, profile_name, notes, public_id, created_at, updated_at",
        [
            (
                offset + n,
                "whatsapp",
                f"5790{n:08d}",
                f"5790{n:08d}",
                "",
                f"Cliente {n}",
                False,
                "",
                "",
                _uuid(quarter.rng),
                quarter.now,
                quarter.now,
            )
            for n in range(1, customers + 1)
        ],
    )
    _copy(
        "rooms_room",
        "id, customer_id, status, agent_id, area_id, opened_at, queued_at, assigned_at, closed_at, closed_by_id, closed_reason, closure_reason_id, event_seq, last_activity_at, last_customer_at, first_queued_at, first_assigned_at, first_answered_at, handoff_note, transfer_info",
        [(room_offset + r[0], offset + r[1], *r[2:], "", "{}") for r in quarter.rooms],
    )
    _copy(
        "rooms_message",
        "room_id, direction, author, agent_id, created_at, updated_at, type, text, payload, status, error_detail, send_attempts, resumes, options, media_id, mime_type, file_name, media_sha256, file, media_status, media_error, media_attempts, quoted",
        [
            (
                room_offset + m[0],
                m[1],
                m[2],
                m[3],
                m[4],
                m[4],
                "text",
                "consulta",
                "{}",
                "read" if m[1] == "out" else "",
                "",
                0,
                0,
                "[]",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                0,
                "{}",
            )
            for m in quarter.messages
        ],
    )
    _copy(
        "rooms_roomevent",
        "room_id, seq, kind, data, actor_id, created_at",
        [(room_offset + e[0], *e[1:]) for e in quarter.events],
    )
    _copy(
        "rooms_survey",
        "room_id, customer_id, status, step, nps, resolved, satisfaction, comment, started_at, asked_at, ended_at, reasked",
        [(room_offset + s[0], offset + s[1], *s[2:], False) for s in quarter.surveys],
    )
    _copy(
        "users_agentpresence",
        "user_id, available, started_at, seen_at, ended_at",
        quarter.presences,
    )
    with connection.cursor() as cursor:
        for table in (
            "users_customer",
            "rooms_room",
            "rooms_message",
            "rooms_roomevent",
            "rooms_survey",
        ):
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            )
        # As autovacuum leaves a table that took these inserts: statistics, and the visibility
        # map that lets the reports read their indexes alone (not inside a test's transaction).
        cursor.execute("ANALYZE" if connection.in_atomic_block else "VACUUM ANALYZE")
    return {
        "rooms": len(quarter.rooms),
        "messages": len(quarter.messages),
        "events": len(quarter.events),
        "surveys": len(quarter.surveys),
        "presences": len(quarter.presences),
    }


def _uuid(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"


def timed(function: Callable[[], object], repeat: int) -> tuple[float, float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples), statistics.quantiles(samples, n=100)[94]


REPORT_ROOMS = int(os.environ.get("REPORT_ROOMS", "100000"))


def page_cases() -> Iterator[tuple[str, str, int]]:
    """(what, the page's path after /admin/reports/, how many times to time it)."""
    area = Area.objects.get(code="tarjetas")
    agent = area.agents.order_by("pk").first()
    assert agent is not None
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(settings.BUSINESS_TIMEZONE))
    month = f"start={today - dt.timedelta(days=29)}&end={today}"
    quarter = f"start={today - dt.timedelta(days=DAYS - 1)}&end={today}"
    yield "default filters (the last 7 days)", "", 30
    yield "the last 30 days", f"?{month}", 15
    yield "the whole quarter (90 days)", f"?{quarter}", 10
    yield "the quarter, one area (Tarjetas)", f"?{quarter}&area={area.pk}", 10
    yield "the quarter, one agent", f"?{quarter}&agent={agent.pk}", 10
    yield "the days of the quarter as CSV", f"day.csv?{quarter}", 10


def measure(row: Callable[..., None]) -> None:
    """Generate the quarter, then time the page (and its queries alone) for each case."""
    counts = generate(REPORT_ROOMS)
    viewer, _ = User.objects.get_or_create(
        username="report-supervisor", defaults={"is_staff": True}
    )
    viewer.groups.add(Group.objects.get_or_create(name="supervisors")[0])
    client = Client()
    client.force_login(viewer)
    shape = (
        f"{counts['rooms']:,} rooms ({counts['messages']:,} messages, {counts['events']:,} "
        f"events, {counts['surveys']:,} surveys, {counts['presences']:,} presence stretches; "
        f"{DAYS} days, {len(AREA_NAMES)} areas, {len(AREA_NAMES) * AGENTS_PER_AREA} agents)"
    )
    for label, path, repeat in page_cases():

        def page(path: str = path) -> None:
            response = client.get(f"/admin/reports/{path}", HTTP_HOST="127.0.0.1")
            assert response.status_code == 200, response.status_code

        page()  # the first of each also fills PostgreSQL's buffers
        p50, p95 = timed(page, repeat)
        queries = _queries_alone(path)
        row(
            f"reports page (the whole admin view, test client) over {shape}: {label} (p50 / p95)",
            f"its queries alone: p50 {queries:.0f} ms",
            f"{p50:.0f} / {p95:.0f} ms",
            "< 1 s",
        )
        shape = "the same"
    heartbeat(row)


def _queries_alone(path: str) -> float:
    query = path.partition("?")[2]
    form = ReportFilters(dict(pair.split("=") for pair in query.split("&") if pair))
    assert form.is_valid(), form.errors
    period = form.period()
    p50, _ = timed(lambda: report_read(period=period, area_names={}, agent_names={}), 5)
    return p50


def heartbeat(row: Callable[..., None]) -> None:
    """What recording presence adds to a console's heartbeat: agent_seen (the profile's UPDATE
    and the stretch's) against the profile's UPDATE alone, in alternating rounds."""
    agent = AgentProfile.objects.select_related("user").first()
    assert agent is not None
    user_id = agent.user_id

    def profile_only() -> None:
        AgentProfile.objects.filter(user_id=user_id).update(last_seen_at=timezone.now())

    agent_seen(user_id=user_id)  # the stretch exists: each beat after extends it
    samples: dict[str, list[float]] = {"alone": [], "with": []}
    for _ in range(10):
        for name, beat in (("alone", profile_only), ("with", lambda: agent_seen(user_id=user_id))):
            for _ in range(100):
                started = time.perf_counter()
                beat()
                samples[name].append((time.perf_counter() - started) * 1000)
    alone, with_presence = (statistics.quantiles(samples[n], n=100) for n in ("alone", "with"))
    row(
        "a console's heartbeat with its presence stretch (agent_seen; p50 / p95)",
        f"the profile's UPDATE alone: {alone[49]:.2f} / {alone[94]:.2f} ms",
        f"{with_presence[49]:.2f} / {with_presence[94]:.2f} ms",
        "one more UPDATE, every 30 s per console; none per message",
    )
