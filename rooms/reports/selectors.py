"""What the reports read: a period's figures by day, area and agent, with their totals, and its
closure reasons. PostgreSQL answers each table through rooms/reports/statements.py (one query
for the day, area and agent tables and the totals, one for the closure reasons); SQLite (the
embedded run) through the ORM path here, which reads the same rows and does the same
arithmetic in Python. The README's *Reports* says what each figure means.
"""

import datetime as dt
import math
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import Q

from rooms.areas import area_default
from rooms.models import Area, Room, RoomEvent, Survey
from rooms.reports.statements import Period, closure_rows, figures_rows
from users.models import AgentPresence
from users.selectors import SUPERVISORS_GROUP

# The period a report opens with: the last week, today included.
DEFAULT_DAYS = 7
# The longest period one page reads: a year (its tables are read whole).
MAX_DAYS = 366
# The row of the conversations no area or agent had: the bot's own.
NO_ONE = "(none: the bot alone)"


def may_read_reports(user: User) -> bool:
    """Staff with the reports' permission (users.view_reports; superusers have every one), and
    staff who are supervisors."""
    if not (user.is_active and user.is_staff):
        return False
    return (
        user.has_perm("users.view_reports") or user.groups.filter(name=SUPERVISORS_GROUP).exists()
    )


@dataclass
class Figures:
    """What one row of a report adds up to: its conversations, their surveys, and its agents'
    presence. Durations are seconds; a percentile is None when nothing was measured."""

    conversations: int = 0
    closed: int = 0
    bot_alone: int = 0
    handed_off: int = 0
    closed_in_queue: int = 0
    wait_p50: float | None = None
    wait_p90: float | None = None
    first_response_p50: float | None = None
    first_response_p90: float | None = None
    handling_p50: float | None = None
    handling_p90: float | None = None
    surveys: int = 0
    surveys_answered: int = 0
    nps_answers: int = 0
    promoters: int = 0
    detractors: int = 0
    resolved_answers: int = 0
    resolved_yes: int = 0
    satisfaction_answers: int = 0
    satisfaction_sum: int = 0
    online_seconds: float = 0.0
    available_seconds: float = 0.0

    @property
    def containment(self) -> float | None:
        """Of the conversations that ended, the share the bot served alone (percent)."""
        return _percent(self.bot_alone, self.closed)

    @property
    def response_rate(self) -> float | None:
        """Of the surveys started, the share with at least one answer (percent)."""
        return _percent(self.surveys_answered, self.surveys)

    @property
    def nps(self) -> float | None:
        """Promoters (9-10) less detractors (0-6), as percent of the recommendation answers."""
        if not self.nps_answers:
            return None
        return (self.promoters - self.detractors) * 100 / self.nps_answers

    @property
    def satisfaction(self) -> float | None:
        """The mean satisfaction answer, 1 to 5."""
        if not self.satisfaction_answers:
            return None
        return self.satisfaction_sum / self.satisfaction_answers

    @property
    def resolved_rate(self) -> float | None:
        """Of the customers who answered whether it was resolved, the share who said yes."""
        return _percent(self.resolved_yes, self.resolved_answers)


def _percent(part: int, whole: int) -> float | None:
    return part * 100 / whole if whole else None


@dataclass(frozen=True)
class Row:
    key: Any  # a date, an area id or an agent id (None: the bot's own conversations)
    label: str
    figures: Figures


@dataclass
class Report:
    period: Period
    first_day: dt.date
    last_day: dt.date
    total: Figures = field(default_factory=Figures)
    days: list[Row] = field(default_factory=list)
    areas: list[Row] = field(default_factory=list)
    agents: list[Row] = field(default_factory=list)
    closures: list["Closure"] = field(default_factory=list)


@dataclass(frozen=True)
class Closure:
    reason: str
    closed: int
    by_person: int
    bot_alone: int
    share: float  # of the period's closed conversations, percent

    @property
    def automatic(self) -> int:
        """Closed by chatbridge itself: the customer's inactivity, business hours."""
        return self.closed - self.by_person


def report_period(
    *,
    first_day: dt.date,
    last_day: dt.date,
    area_id: int | None = None,
    agent_id: int | None = None,
) -> Period:
    """The conversations opened from the start of `first_day` to the end of `last_day`, where
    the bank works (BUSINESS_TIMEZONE)."""
    zone = zoneinfo.ZoneInfo(settings.BUSINESS_TIMEZONE)
    return Period(
        start=dt.datetime.combine(first_day, dt.time(), tzinfo=zone),
        end=dt.datetime.combine(last_day + dt.timedelta(days=1), dt.time(), tzinfo=zone),
        zone=settings.BUSINESS_TIMEZONE,
        default_area_id=area_default().pk,
        area_id=area_id,
        agent_id=agent_id,
    )


def report_read(
    *, period: Period, area_names: dict[int, str], agent_names: dict[int, str]
) -> Report:
    """Every table of a period's report, in two queries on PostgreSQL: figures by day (every
    day of the period, none left out), by area and by agent, the totals, and the closure
    reasons. `area_names` and `agent_names` label the rows (the filters' choices)."""
    zone = zoneinfo.ZoneInfo(period.zone)
    report = Report(
        period=period,
        first_day=period.start.astimezone(zone).date(),
        last_day=(period.end.astimezone(zone) - dt.timedelta(days=1)).date(),
    )
    by_table: dict[str, dict[Any, Figures]] = defaultdict(dict)
    for table, key, values in _figures_rows(period):
        by_table[table][key] = Figures(**values)
    report.total = by_table["total"].get(None, Figures())
    day = report.first_day
    while day <= report.last_day:
        report.days.append(Row(day, f"{day:%a %d %b}", by_table["day"].get(day, Figures())))
        day += dt.timedelta(days=1)
    # Areas in the operators' order (area_names'), agents by name, the bot's own last.
    order: dict[int | None, int] = {area_id: n for n, area_id in enumerate(area_names)}
    report.areas = sorted(
        (Row(key, _area_label(key, area_names), f) for key, f in by_table["area"].items()),
        key=lambda row: order.get(row.key, len(order)),
    )
    report.agents = sorted(
        (
            Row(key, agent_names.get(key, f"user {key}") if key else NO_ONE, f)
            for key, f in by_table["agent"].items()
        ),
        key=lambda row: (row.key is None, row.label.casefold()),
    )
    closures = _closure_rows(period)
    closed = sum(row[1] for row in closures)
    report.closures = sorted(
        (
            Closure(reason or "(no reason given)", count, person, bot, count * 100 / closed)
            for reason, count, person, bot in closures
        ),
        key=lambda closure: (-closure.closed, closure.reason),
    )
    return report


def _area_label(key: int | None, names: dict[int, str]) -> str:
    return NO_ONE if key is None else names.get(key, f"area {key}")


def _figures_rows(period: Period) -> list[tuple[str, Any, dict[str, Any]]]:
    if connection.vendor == "postgresql":
        return figures_rows(period)
    return figures_rows_orm(period)


def _closure_rows(period: Period) -> list[tuple[str, int, int, int]]:
    if connection.vendor == "postgresql":
        return closure_rows(period)
    return closure_rows_orm(period)


# --- the ORM path: the same rows as rooms/reports/statements.py, the arithmetic in Python ----


@dataclass
class _Conversation:
    day: dt.date
    area_id: int | None
    agent_id: int | None
    closed: bool
    handed_off: bool
    closed_at: dt.datetime | None
    closed_by_id: int | None
    closed_reason: str
    queued_at: dt.datetime | None = None  # its first hand-off
    assigned_at: dt.datetime | None = None  # its first assignment
    answered_at: dt.datetime | None = None  # its first agent message
    survey: Survey | None = None


def _conversations(period: Period) -> dict[int, _Conversation]:
    zone = zoneinfo.ZoneInfo(period.zone)
    rooms = Room.objects.filter(opened_at__gte=period.start, opened_at__lt=period.end)
    if period.area_id is not None:
        area = Q(area_id=period.area_id)
        if period.area_id == period.default_area_id:
            area |= Q(area__isnull=True, queued_at__isnull=False)
        rooms = rooms.filter(area)
    found = {
        room.pk: _Conversation(
            day=room.opened_at.astimezone(zone).date(),
            area_id=room.area_id or (period.default_area_id if room.queued_at else None),
            agent_id=room.agent_id,
            closed=room.status == Room.Status.CLOSED,
            handed_off=room.queued_at is not None,
            closed_at=room.closed_at,
            closed_by_id=room.closed_by_id,
            closed_reason=room.closed_reason,
            queued_at=room.first_queued_at,
            assigned_at=room.first_assigned_at,
            answered_at=room.first_answered_at,
        )
        for room in rooms.only(
            "opened_at",
            "area_id",
            "agent_id",
            "status",
            "queued_at",
            "closed_at",
            "closed_by_id",
            "closed_reason",
            "first_queued_at",
            "first_assigned_at",
            "first_answered_at",
        )
    }
    # Who had it last, for a room that is no agent's now: its last assignment's agent.
    assignments = RoomEvent.objects.filter(
        room__in=rooms.filter(agent__isnull=True, queued_at__isnull=False), kind="room.assigned"
    ).order_by("room_id", "seq")
    for room_id, data in assignments.values_list("room_id", "data"):
        found[room_id].agent_id = data.get("agent") if isinstance(data, dict) else None
    for survey in Survey.objects.filter(room__in=rooms):
        found[survey.room_id].survey = survey
    if period.agent_id is not None:
        found = {pk: talk for pk, talk in found.items() if talk.agent_id == period.agent_id}
    return found


def figures_rows_orm(period: Period) -> list[tuple[str, Any, dict[str, Any]]]:
    """The rows of rooms/reports/statements.py's `figures_rows`, read through the ORM."""
    groups: dict[tuple[str, Any], list[_Conversation]] = defaultdict(list)
    for talk in _conversations(period).values():
        for table, key in _keys(talk.day, talk.area_id, talk.agent_id):
            groups[(table, key)].append(talk)
    rows: dict[tuple[str, Any], dict[str, Any]] = {
        group: _talk_figures(talks) for group, talks in groups.items()
    }
    for group, (online, available) in _presence(period).items():
        values = rows.setdefault(group, _talk_figures([]))
        values["online_seconds"], values["available_seconds"] = online, available
    return [(table, key, values) for (table, key), values in rows.items()]


def _keys(day: dt.date, area_id: int | None, agent_id: int | None) -> list[tuple[str, Any]]:
    return [("total", None), ("day", day), ("area", area_id), ("agent", agent_id)]


def _talk_figures(talks: list[_Conversation]) -> dict[str, Any]:
    def seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
        return (end - start).total_seconds() if start and end else None

    waits = [seconds(talk.queued_at, talk.assigned_at) for talk in talks]
    responses = [seconds(talk.assigned_at, talk.answered_at) for talk in talks]
    handlings = [seconds(talk.assigned_at, talk.closed_at) for talk in talks]
    surveys = [talk.survey for talk in talks if talk.survey is not None]
    nps = [survey.nps for survey in surveys if survey.nps is not None]
    resolved = [survey.resolved for survey in surveys if survey.resolved is not None]
    satisfaction = [s.satisfaction for s in surveys if s.satisfaction is not None]
    values: dict[str, Any] = {
        "conversations": len(talks),
        "closed": sum(talk.closed for talk in talks),
        "bot_alone": sum(talk.closed and not talk.handed_off for talk in talks),
        "handed_off": sum(talk.handed_off for talk in talks),
        "closed_in_queue": sum(
            talk.closed and talk.handed_off and talk.assigned_at is None for talk in talks
        ),
        "surveys": len(surveys),
        "surveys_answered": sum(_answered(survey) for survey in surveys),
        "nps_answers": len(nps),
        "promoters": sum(score >= 9 for score in nps),
        "detractors": sum(score <= 6 for score in nps),
        "resolved_answers": len(resolved),
        "resolved_yes": sum(resolved),
        "satisfaction_answers": len(satisfaction),
        "satisfaction_sum": sum(satisfaction),
        "online_seconds": 0.0,
        "available_seconds": 0.0,
    }
    for name, measured in (("wait", waits), ("first_response", responses), ("handling", handlings)):
        present = [value for value in measured if value is not None]
        values[f"{name}_p50"] = percentile(present, 0.5)
        values[f"{name}_p90"] = percentile(present, 0.9)
    return values


def _answered(survey: Survey) -> bool:
    return any(
        (
            survey.nps is not None,
            survey.resolved is not None,
            survey.satisfaction is not None,
            bool(survey.comment),
        )
    )


def percentile(values: Iterable[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: the value at `fraction` of the sorted values, interpolated
    between the two nearest ranks; None for no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = fraction * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _presence(period: Period) -> dict[tuple[str, Any], tuple[float, float]]:
    zone = zoneinfo.ZoneInfo(period.zone)
    stretches = AgentPresence.objects.filter(
        started_at__gte=period.start, started_at__lt=period.end
    )
    if period.agent_id is not None:
        stretches = stretches.filter(user_id=period.agent_id)
    works: dict[int, list[int]] = defaultdict(list)
    for user_id, area_id in Area.agents.through.objects.values_list("user_id", "area_id"):
        works[user_id].append(area_id)
    totals: dict[tuple[str, Any], list[float]] = defaultdict(lambda: [0.0, 0.0])
    for user_id, started, seen, available in stretches.values_list(
        "user_id", "started_at", "seen_at", "available"
    ):
        areas = works.get(user_id) or [period.default_area_id]
        if period.area_id is not None and period.area_id not in areas:
            continue
        seconds = (seen - started).total_seconds()
        keys = [("total", None), ("day", started.astimezone(zone).date()), ("agent", user_id)]
        keys += [
            ("area", area) for area in areas if period.area_id is None or area == period.area_id
        ]
        for key in keys:
            totals[key][0] += seconds
            totals[key][1] += seconds if available else 0.0
    return {key: (online, available) for key, (online, available) in totals.items()}


def closure_rows_orm(period: Period) -> list[tuple[str, int, int, int]]:
    """The rows of rooms/reports/statements.py's `closure_rows`, read through the ORM."""
    reasons: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for talk in _conversations(period).values():
        if talk.closed:
            counts = reasons[talk.closed_reason]
            counts[0] += 1
            counts[1] += talk.closed_by_id is not None
            counts[2] += not talk.handed_off
    return [(reason, *counts) for reason, counts in reasons.items()]  # type: ignore[misc]
