"""The admin's reports page and its CSV downloads (served by the admin site: staff only, in
BUSINESS_TIMEZONE; rooms/admin.py adds them). English, as the rest of the admin."""

from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from rooms.reports.forms import ReportFilters
from rooms.reports.page import report_page
from rooms.reports.selectors import Report, may_read_reports, report_read
from rooms.reports.tables import TABLES, csv_text


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
        context.update(
            report_page(
                report=report,
                area_names=form.area_names,
                agent_names=form.agent_names,
                query=form.query(),
            )
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
