"""The admin's reports page and its CSV downloads (served by the admin site: staff only, in
BUSINESS_TIMEZONE; rooms/admin.py adds them). English, as the rest of the admin."""

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.safestring import SafeString

from rooms.reports import charts
from rooms.reports.forms import ReportFilters
from rooms.reports.selectors import Figures, Report, may_read_reports, report_read
from rooms.reports.tables import (
    COLUMNS,
    TABLES,
    cells,
    csv_text,
    duration,
    groups,
    hours_shown,
    rows_of,
)

TITLES = {"day": "By day", "area": "By area", "agent": "By agent"}


def reports_permitted(request: HttpRequest) -> bool:
    return isinstance(request.user, User) and may_read_reports(request.user)


def _report(request: HttpRequest) -> tuple[ReportFilters, Report | None]:
    if not reports_permitted(request):
        raise PermissionDenied("the reports are for supervisors and those allowed to see them")
    form = ReportFilters(request.GET)
    if not form.is_valid():
        return form, None
    report = report_read(
        period=form.period(), area_names=form.area_names, agent_names=form.agent_names
    )
    return form, report


def reports_view(request: HttpRequest) -> TemplateResponse:
    form, report = _report(request)
    context: dict[str, Any] = {
        **admin.site.each_context(request),
        "title": "Reports",
        # The tables need the page's whole width.
        "is_nav_sidebar_enabled": False,
        "form": form,
        "report": report,
    }
    if report is not None:
        query = form.query()
        total = report.total
        context.update(
            query=query,
            filtered=_filtered(form, report),
            summary={
                "wait": f"{duration(total.wait_p50)} / {duration(total.wait_p90)}",
                "first_response": duration(total.first_response_p50),
                "handling": duration(total.handling_p50),
                "online": hours_shown(total.online_seconds / 3600),
            },
            tables=[_table(report, name, query) for name in TITLES],
            charts=_charts(report),
            reasons_csv=_csv_url("reasons", query),
            reasons_chart=charts.share_bars(
                "Closed conversations by reason",
                [(closure.reason, closure.closed) for closure in report.closures[:8]],
            ),
        )
    return TemplateResponse(request, "admin/reports.html", context)


def reports_csv(request: HttpRequest, table: str) -> HttpResponse:
    """One table of the page as CSV, with the page's filters."""
    if table not in TABLES:
        raise Http404("no such table")
    form, report = _report(request)
    if report is None:
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain")
    name = f"chatbridge-{table}-{report.first_day}-{report.last_day}.csv"
    # With a byte order mark: Excel, where these are opened most, reads UTF-8 by it.
    response = HttpResponse(
        "\ufeff" + csv_text(report, table), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _filtered(form: ReportFilters, report: Report) -> str:
    """What the period is narrowed to, in words ("" for everything)."""
    parts = []
    if report.period.area_id is not None:
        parts.append(f"area {form.area_names.get(report.period.area_id, report.period.area_id)}")
    if report.period.agent_id is not None:
        parts.append(
            f"agent {form.agent_names.get(report.period.agent_id, report.period.agent_id)}"
        )
    return ", ".join(parts)


def _csv_url(table: str, query: str) -> str:
    return f"{reverse('admin:reports-csv', args=[table])}?{query}"


def _table(report: Report, name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": TITLES[name],
        "groups": groups(name),
        "columns": [column.title for column in COLUMNS[name]],
        "rows": [(row.label, cells(name, row.figures)) for row in rows_of(report, name)],
        "total": cells(name, report.total),
        "csv": _csv_url(name, query),
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
