"""The reports' tables: their columns, read the same way by the page (formatted for people) and
by the CSV downloads (numbers for spreadsheets: seconds, percents, one decimal)."""

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from rooms.reports.selectors import Closure, Figures, Report, Row


def duration(seconds: float | None) -> str:
    """45s, 3m 07s, 12m, 1h 05m: short enough for a table of eighteen columns."""
    if seconds is None:
        return "—"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 3600:
        return f"{round(whole / 60)}m"
    hours, minutes = divmod(round(whole / 60), 60)
    return f"{hours}h {minutes:02d}m"


def hours_shown(value: float | None) -> str:
    return "—" if not value else f"{value:.1f} h"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f} %"


def score(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def mean(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def count(value: float | None) -> str:
    return f"{value:,.0f}" if value is not None else "—"


@dataclass(frozen=True)
class Column:
    group: str  # the heading over its group of columns
    title: str
    csv: str  # the CSV header: snake case, with its unit
    value: Callable[[Figures], float | int | None]
    shown: Callable[[float | None], str] = count


CONVERSATIONS = [
    Column("Conversations", "total", "conversations", lambda f: f.conversations),
    Column("Conversations", "bot alone", "bot_alone", lambda f: f.bot_alone),
    Column("Conversations", "containment", "containment_percent", lambda f: f.containment, percent),
    Column("Conversations", "handed off", "handed_off", lambda f: f.handed_off),
    Column("Conversations", "closed queued", "closed_in_queue", lambda f: f.closed_in_queue),
]
WAIT = [
    Column("Queue wait", "p50", "wait_p50_seconds", lambda f: f.wait_p50, duration),
    Column("Queue wait", "p90", "wait_p90_seconds", lambda f: f.wait_p90, duration),
]
AGENT_WORK = [
    Column(
        "First response",
        "p50",
        "first_response_p50_seconds",
        lambda f: f.first_response_p50,
        duration,
    ),
    Column(
        "First response",
        "p90",
        "first_response_p90_seconds",
        lambda f: f.first_response_p90,
        duration,
    ),
    Column("Handling", "p50", "handling_p50_seconds", lambda f: f.handling_p50, duration),
    Column("Handling", "p90", "handling_p90_seconds", lambda f: f.handling_p90, duration),
]
SURVEY = [
    Column("Survey", "started", "surveys", lambda f: f.surveys),
    Column("Survey", "answered", "survey_response_percent", lambda f: f.response_rate, percent),
    Column("Survey", "NPS", "nps", lambda f: f.nps, score),
    Column("Survey", "satisf.", "satisfaction_mean", lambda f: f.satisfaction, mean),
    Column("Survey", "resolved", "resolved_percent", lambda f: f.resolved_rate, percent),
]
# Presence is summed in seconds and shown, and exported, in hours.
ONLINE = [
    Column("Agents", "online", "online_hours", lambda f: f.online_seconds / 3600, hours_shown),
    Column(
        "Agents", "available", "available_hours", lambda f: f.available_seconds / 3600, hours_shown
    ),
]


HANDLED = [
    Column("Conversations", "handled", "conversations", lambda f: f.conversations),
    Column("Conversations", "closed", "closed", lambda f: f.closed),
]

COLUMNS = {
    "day": CONVERSATIONS + WAIT + AGENT_WORK + SURVEY + ONLINE,
    "area": CONVERSATIONS + WAIT + AGENT_WORK + SURVEY + ONLINE,
    "agent": HANDLED + AGENT_WORK + SURVEY + ONLINE,
}
KEY_HEADERS = {"day": ["day"], "area": ["area_id", "area"], "agent": ["agent_id", "agent"]}
TABLES = ["day", "area", "agent", "reasons"]


def groups(table: str) -> list[tuple[str, int]]:
    """The headings over the columns of a table, with how many columns each spans."""
    spans: list[tuple[str, int]] = []
    for column in COLUMNS[table]:
        if spans and spans[-1][0] == column.group:
            spans[-1] = (column.group, spans[-1][1] + 1)
        else:
            spans.append((column.group, 1))
    return spans


def cells(table: str, figures: Figures) -> list[str]:
    return [column.shown(column.value(figures)) for column in COLUMNS[table]]


def rows_of(report: Report, table: str) -> list[Row]:
    return {"day": report.days, "area": report.areas, "agent": report.agents}[table]


def _number(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.1f}"


def _text(value: str) -> str:
    """A name or a reason as a spreadsheet takes it: never as a formula (OWASP's CSV
    injection: a closure reason written "=HYPERLINK(...)" would run when the file is opened)."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_text(report: Report, table: str) -> str:
    """A table as CSV: a header line, then one line per row (not the totals: a spreadsheet adds
    them up, and its percentiles are the page's)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    if table == "reasons":
        writer.writerow(
            ["reason", "closed", "share_percent", "by_a_person", "automatic", "bot_alone"]
        )
        for closure in report.closures:
            writer.writerow(_closure_cells(closure))
        return out.getvalue()
    columns = COLUMNS[table]
    writer.writerow(KEY_HEADERS[table] + [column.csv for column in columns])
    for row in rows_of(report, table):
        key = [row.key.isoformat()] if table == "day" else [row.key or "", _text(row.label)]
        writer.writerow(key + [_number(column.value(row.figures)) for column in columns])
    return out.getvalue()


def _closure_cells(closure: Closure) -> list[str]:
    return [
        _text(closure.reason),
        str(closure.closed),
        f"{closure.share:.1f}",
        str(closure.by_person),
        str(closure.automatic),
        str(closure.bot_alone),
    ]
