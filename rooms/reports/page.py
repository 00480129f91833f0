"""What the reports page shows of a report: its summary, its charts and its tables, each with
its CSV link (the view adds the filters' form)."""

from typing import Any

from django.urls import reverse
from django.utils.safestring import SafeString

from rooms.reports import charts
from rooms.reports.selectors import Figures, Report
from rooms.reports.tables import COLUMNS, cells, duration, groups, hours_shown, rows_of

TITLES = {"day": "By day", "area": "By area", "agent": "By agent"}
# The closure reasons drawn: the commonest (the table lists them all).
REASONS_DRAWN = 8


def report_page(
    *, report: Report, area_names: dict[int, str], agent_names: dict[int, str], query: str
) -> dict[str, Any]:
    """The page's context for `report`; `query` carries its filters to the CSV links."""
    total = report.total
    return {
        "filtered": _filtered(report, area_names, agent_names),
        "summary": {
            "wait": f"{duration(total.wait_p50)} / {duration(total.wait_p90)}",
            "first_response": duration(total.first_response_p50),
            "handling": duration(total.handling_p50),
            "online": hours_shown(total.online_seconds / 3600),
        },
        "charts": _charts(report),
        "tables": [_table(report, name, query) for name in TITLES],
        "reasons_csv": csv_url("reasons", query),
        "reasons_chart": charts.share_bars(
            "Closed conversations by reason",
            [(closure.reason, closure.closed) for closure in report.closures[:REASONS_DRAWN]],
        ),
    }


def csv_url(table: str, query: str) -> str:
    return f"{reverse('admin:reports-csv', args=[table])}?{query}"


def _filtered(report: Report, area_names: dict[int, str], agent_names: dict[int, str]) -> str:
    """What the period is narrowed to, in words ("" for everything)."""
    area, agent = report.period.area_id, report.period.agent_id
    parts = []
    if area is not None:
        parts.append(f"area {area_names.get(area, area)}")
    if agent is not None:
        parts.append(f"agent {agent_names.get(agent, agent)}")
    return ", ".join(parts)


def _table(report: Report, name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": TITLES[name],
        "groups": groups(name),
        "columns": [column.title for column in COLUMNS[name]],
        "rows": [(row.label, cells(name, row.figures)) for row in rows_of(report, name)],
        "total": cells(name, report.total),
        "csv": csv_url(name, query),
    }


def _charts(report: Report) -> list[SafeString]:
    labels = [f"{row.key:%d %b}" for row in report.days]
    days = [row.figures for row in report.days]
    return [
        charts.stacked_bars(
            "Conversations per day",
            labels,
            [
                ("handed off", "series-0", [f.handed_off for f in days]),
                ("bot alone", "series-1", [f.bot_alone for f in days]),
                ("with the bot now", "series-2", [_with_bot(f) for f in days]),
            ],
        ),
        charts.duration_lines(
            "Waiting time in the queue per day",
            labels,
            [
                ("p50", "series-0", [f.wait_p50 for f in days]),
                ("p90", "series-3", [f.wait_p90 for f in days]),
            ],
        ),
    ]


def _with_bot(figures: Figures) -> int:
    """Conversations neither handed off nor ended: still with the bot."""
    return figures.conversations - figures.handed_off - figures.bot_alone
