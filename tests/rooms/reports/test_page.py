"""The reports page in the admin: who may open it, what it shows, its filters, its CSV."""

import csv
import io

import pytest
from django.contrib.auth.models import Group, Permission, User

from rooms.models import Room
from tests.rooms.reports.conftest import MONDAY, TUESDAY

pytestmark = pytest.mark.django_db

PAGE = "/admin/reports/"
TWO_DAYS = f"start={MONDAY}&end={TUESDAY}"


def staff(username: str, *, permission: bool = False, supervisor: bool = False) -> User:
    user = User.objects.create_user(username, password="secret", is_staff=True)
    if permission:
        user.user_permissions.add(Permission.objects.get(codename="view_reports"))
    if supervisor:
        user.groups.add(Group.objects.get_or_create(name="supervisors")[0])
    return user


def test_an_agent_who_is_not_staff_is_sent_to_the_admins_login(client, desk):
    client.force_login(desk.ana)

    for url in (PAGE, f"{PAGE}day.csv"):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")


def test_staff_without_the_permission_is_refused(client, desk):
    client.force_login(staff("olga"))

    assert client.get(PAGE).status_code == 403
    assert client.get(f"{PAGE}day.csv").status_code == 403
    assert "Reports" not in client.get("/admin/").content.decode()  # not offered either


@pytest.mark.parametrize(
    "who",
    [
        {"permission": True},  # an operator given users.view_reports
        {"supervisor": True},  # a supervisor who is staff
    ],
)
def test_operators_and_supervisors_read_the_reports(client, desk, who):
    client.force_login(staff("sofia", **who))

    index = client.get("/admin/").content.decode()
    page = client.get(f"{PAGE}?{TWO_DAYS}")

    assert f'href="{PAGE}"' in index
    assert page.status_code == 200
    assert page.context["report"].total.conversations == 6


def test_a_superuser_reads_them(client, desk):
    client.force_login(User.objects.create_superuser("root", password="secret"))

    assert client.get(PAGE).status_code == 200


def test_the_page_shows_the_figures_the_filters_and_the_csv_links(client, desk):
    client.force_login(staff("sofia", supervisor=True))

    html = client.get(f"{PAGE}?{TWO_DAYS}").content.decode()

    assert "Mon 2 Nov 2026" in html and "Tue 3 Nov 2026" in html
    assert "America/Bogota" in html
    for shown in ("Ana Gómez", "Beto Ruiz", "Nivel 2", "Resuelto", "2m 00s", "2m 48s", "17m"):
        assert shown in html, shown
    assert html.count('<figure class="report-chart">') == 3  # per day: rooms, waits; reasons
    for table in ("day", "area", "agent", "reasons"):
        assert f'href="{PAGE}{table}.csv?{TWO_DAYS.replace("&", "&amp;")}"' in html


def test_it_opens_on_the_last_seven_days(client, desk):
    client.force_login(staff("sofia", supervisor=True))

    report = client.get(PAGE).context["report"]

    assert (report.last_day - report.first_day).days == 6
    assert len(report.days) == 7


def test_filters_that_make_no_period_are_said_so(client, desk):
    client.force_login(staff("sofia", supervisor=True))

    backwards = client.get(f"{PAGE}?start={TUESDAY}&end={MONDAY}")
    too_long = client.get(f"{PAGE}?start=2025-01-01&end=2026-12-01")
    unknown_area = client.get(f"{PAGE}?area=999999")

    assert "The period ends before it starts." in backwards.content.decode()
    assert "A report covers at most 366 days." in too_long.content.decode()
    assert unknown_area.context["report"] is None
    assert client.get(f"{PAGE}day.csv?start={TUESDAY}&end={MONDAY}").status_code == 400


def test_an_area_and_an_agent_narrow_the_page(client, desk):
    client.force_login(staff("sofia", supervisor=True))

    by_area = client.get(f"{PAGE}?{TWO_DAYS}&area={desk.level_2.pk}").context["report"]
    by_agent = client.get(f"{PAGE}?{TWO_DAYS}&agent={desk.ana.pk}")

    assert by_area.total.conversations == 2
    assert by_agent.context["report"].total.conversations == 1
    assert "agent Ana Gómez" in by_agent.content.decode()


def read_csv(response) -> list[list[str]]:
    body = response.content.decode("utf-8")
    assert body.startswith("\ufeff")  # Excel reads UTF-8 by it
    return list(csv.reader(io.StringIO(body.removeprefix("\ufeff"))))


def test_the_days_as_csv(client, desk):
    client.force_login(staff("sofia", supervisor=True))

    response = client.get(f"{PAGE}day.csv?{TWO_DAYS}")

    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        'attachment; filename="chatbridge-day-2026-11-02-2026-11-03.csv"'
    )
    header, monday, tuesday = read_csv(response)
    assert header == [
        "day",
        "conversations",
        "bot_alone",
        "containment_percent",
        "handed_off",
        "closed_in_queue",
        "wait_p50_seconds",
        "wait_p90_seconds",
        "first_response_p50_seconds",
        "first_response_p90_seconds",
        "handling_p50_seconds",
        "handling_p90_seconds",
        "surveys",
        "survey_response_percent",
        "nps",
        "satisfaction_mean",
        "resolved_percent",
        "online_hours",
        "available_hours",
    ]
    assert monday == [
        "2026-11-02", "3", "1", "33.3", "2", "0", "120.0", "168.0", "45.0", "57.0", "810.0",
        "978.0", "3", "100.0", "33.3", "3.5", "50.0", "4.5", "4.0",
    ]  # fmt: skip
    assert tuesday[:8] == ["2026-11-03", "3", "0", "0.0", "2", "1", "120.0", "120.0"]
    assert tuesday[13:17] == ["0.0", "", "", ""]  # one survey, unanswered: no score


def test_the_areas_agents_and_reasons_as_csv(client, desk):
    client.force_login(staff("sofia", supervisor=True))

    areas = read_csv(client.get(f"{PAGE}area.csv?{TWO_DAYS}"))
    agents = read_csv(client.get(f"{PAGE}agent.csv?{TWO_DAYS}&area={desk.level_2.pk}"))
    reasons = read_csv(client.get(f"{PAGE}reasons.csv?{TWO_DAYS}"))

    assert areas[0][:3] == ["area_id", "area", "conversations"]
    assert [row[:3] for row in areas[1:]] == [
        [str(desk.general.pk), "General", "2"],
        [str(desk.level_2.pk), "Nivel 2", "2"],
        ["", "(none: the bot alone)", "2"],
    ]
    assert [row[:4] for row in agents] == [
        ["agent_id", "agent", "conversations", "closed"],
        [str(desk.beto.pk), "Beto Ruiz", "1", "1"],
        ["", "(none: the bot alone)", "1", "1"],
    ]
    assert reasons == [
        ["reason", "closed", "share_percent", "by_a_person", "automatic", "bot_alone"],
        ["Inactividad del cliente", "2", "40.0", "0", "2", "1"],
        ["Resuelto", "2", "40.0", "2", "0", "0"],
        ["Fuera del horario de atención", "1", "20.0", "0", "1", "0"],
    ]


def test_a_table_that_does_not_exist_is_not_found(client, desk):
    client.force_login(staff("sofia", supervisor=True))

    assert client.get(f"{PAGE}everything.csv").status_code == 404


def test_the_presence_stretches_are_listed_among_the_agents(client, desk):
    client.force_login(User.objects.create_superuser("root", password="secret"))

    listing = client.get("/admin/users/agentpresence/")

    assert listing.status_code == 200
    assert "Ana Gómez" in listing.content.decode() or "ana" in listing.content.decode()
    assert 'href="/admin/users/agentpresence/add/"' not in listing.content.decode()


def test_a_reason_is_never_a_formula_in_the_csv(client, desk):
    Room.objects.filter(pk=desk.rooms["R4"].pk).update(closed_reason='=HYPERLINK("http://x")')
    client.force_login(staff("sofia", supervisor=True))

    reasons = read_csv(client.get(f"{PAGE}reasons.csv?{TWO_DAYS}"))

    assert ['\'=HYPERLINK("http://x")', "1", "20.0", "0", "1", "0"] in reasons
