"""The reports page as a supervisor reads it, in a real browser (Debian's Chromium, a real
Daphne process), over ten generated days of a desk: the figures the page shows are the
report's, a filter narrows it, a table downloads as CSV. The screenshot goes to
docs/screenshots/admin-reports.png."""

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import Group, User
from playwright.sync_api import expect

from bench.reports import generate
from rooms.models import Area
from rooms.reports.forms import ReportFilters
from rooms.reports.selectors import report_read
from tests.servers import AppProcess

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def server(fake_vendors) -> Iterator[AppProcess]:
    process = AppProcess.daphne(BUSINESS_TIMEZONE="America/Bogota").start()
    yield process
    process.stop()


def test_a_supervisor_reads_filters_and_downloads_the_reports(server, browser, settings):
    settings.BUSINESS_TIMEZONE = "America/Bogota"
    generate(rooms=2500, days=10)
    sofia = User.objects.create_user(
        "sofia", password="clave-segura", first_name="Sofía", is_staff=True
    )
    sofia.groups.add(Group.objects.get_or_create(name="supervisors")[0])
    form = ReportFilters({})
    assert form.is_valid()
    week = report_read(
        period=form.period(), area_names=form.area_names, agent_names=form.agent_names
    )

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", "sofia")
    page.fill("input[name=password]", "clave-segura")
    page.click("input[type=submit]")
    page.click("#content .module h2 a[href='/admin/reports/']")  # the index's sidebar

    summary = page.locator("#report-summary")
    expect(summary).to_contain_text(f"Conversations{week.total.conversations}")
    expect(page.locator("#report-day tbody tr")).to_have_count(7)
    expect(page.locator("#report-agent tbody tr")).to_have_count(len(week.agents))
    expect(page.locator(".report-chart svg")).to_have_count(3)
    # The page is as wide as the window: the tables fit, nothing scrolls sideways.
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280
    for table in ("day", "area"):
        box = page.locator(f"#report-{table} .report-scroll")
        assert box.evaluate("el => el.scrollWidth <= el.clientWidth"), table
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-reports.png"), full_page=True)

    cards = Area.objects.get(code="tarjetas")
    page.select_option("select[name=area]", str(cards.pk))
    page.click("#report-filters button[type=submit]")
    expect(page).to_have_url(f"{server.url}/admin/reports/?{_query(page, cards.pk)}")
    expect(page.locator("#report-area tbody th")).to_have_text(["Tarjetas"])
    expect(page.locator(".report-period")).to_contain_text("area Tarjetas")

    with page.expect_download() as download:
        page.click("#report-day .report-csv")
    body = Path(download.value.path()).read_text(encoding="utf-8-sig")
    header, *days = list(csv.reader(io.StringIO(body)))
    assert header[:3] == ["day", "conversations", "bot_alone"]
    assert len(days) == 7
    by_area = ReportFilters({"area": str(cards.pk)})
    assert by_area.is_valid()
    area_week = report_read(period=by_area.period(), area_names={}, agent_names={})
    assert [int(row[1]) for row in days] == [row.figures.conversations for row in area_week.days]
    assert download.value.suggested_filename.startswith("chatbridge-day-")


def _query(page, area_id: int) -> str:
    start = page.locator("input[name=start]").input_value()
    end = page.locator("input[name=end]").input_value()
    return f"start={start}&end={end}&area={area_id}&agent="
