"""The supervisor's console in a real browser (Debian's Chromium, a real Daphne process), with
two agents: the supervision view lists every agent with their load and every open room; the
supervisor reads Ana's room live, switches Ana to unavailable (her console shows it), gives the
room to Beto and closes it. Screenshot: docs/screenshots/desk-supervisor.png."""

import datetime as dt
from pathlib import Path

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone
from playwright.sync_api import expect

from rooms.desk.alerts import alerts_raise
from rooms.models import ClosureReason, Room
from tests.consoles import console
from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import post_signed
from users.models import AgentProfile

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WA = "573009300001"


def test_a_supervisor_watches_moves_and_closes_a_room(console_server, browser):
    ClosureReason.objects.get_or_create(title="Resuelto")
    sofia = AgentFactory(username="sofia", first_name="Sofía", password="clave-segura")
    sofia.groups.add(Group.objects.get_or_create(name="supervisors")[0])
    AgentFactory(username="ana", first_name="Ana", password="clave-segura")
    beto = AgentFactory(username="beto", first_name="Beto", password="clave-segura")
    ana, beto_page = (
        console(browser, console_server.url, "ana", width=1400, height=950),
        console(browser, console_server.url, "beto", width=1400, height=950),
    )
    problems: list[str] = []
    supervisor = console(browser, console_server.url, "sofia", width=1400, height=950)
    for page in (ana, beto_page, supervisor):
        page.on("pageerror", lambda error: problems.append(str(error)))
    expect(ana.locator("#supervise")).to_be_hidden()  # agents have no such view

    post_signed(console_server.url, text_from(WA, "agente, no me llega el token"))
    ana.locator("#queue li button.take").click()
    expect(ana.locator("#rooms li")).to_have_count(1)

    supervisor.click("#supervise")
    agents = supervisor.locator("#sv-agents tr")
    expect(agents).to_have_count(3)
    expect(supervisor.locator("#sv-agents tr", has_text="Ana")).to_contain_text("1/5")
    rooms = supervisor.locator("#sv-rooms tr")
    expect(rooms).to_have_count(1)
    expect(rooms.first).to_contain_text("Ana")

    # Read it live: a message the customer writes now appears in the supervisor's view.
    rooms.first.get_by_role("button", name="Ver").click()
    watched = supervisor.locator("#sv-messages")
    expect(watched).to_contain_text("agente, no me llega el token")
    post_signed(console_server.url, text_from(WA, "¿siguen ahí?"))
    expect(watched).to_contain_text("¿siguen ahí?")

    # Another customer has waited 11 minutes in the queue: the periodic job's alert is live here.
    post_signed(console_server.url, text_from("573009300002", "agente por favor"))
    expect(supervisor.locator("#queue li")).to_have_count(1)
    Room.objects.filter(status=Room.Status.QUEUED).update(
        queued_at=timezone.now() - dt.timedelta(minutes=11)
    )
    assert alerts_raise() == 1
    expect(supervisor.locator("#sv-alerts li.alert")).to_contain_text(
        "lleva 11 min esperando en la cola de General"
    )
    supervisor.screenshot(path=str(SCREENSHOTS / "desk-supervisor.png"))

    # Ana switched to unavailable: her own console says so.
    supervisor.get_by_role("checkbox", name="Ana está disponible").uncheck()
    expect(ana.locator("#available")).not_to_be_checked()
    assert AgentProfile.objects.get(user__username="ana").available is False

    # Given to Beto; then closed by the supervisor.
    supervisor.select_option("#sv-reassign-to", label="Beto (0/5)")
    supervisor.click("#sv-reassign")
    expect(beto_page.locator("#rooms li")).to_have_count(1)
    expect(ana.locator("#rooms li")).to_have_count(0)
    assert Room.objects.get(customer__uid=WA).agent == beto
    supervisor.select_option("#sv-reason", label="Resuelto")
    supervisor.on("dialog", lambda dialog: dialog.accept())
    supervisor.click("#sv-close")
    expect(beto_page.locator("#rooms li")).to_have_count(0)
    expect(supervisor.locator("#sv-meta")).to_contain_text("Cerrada")
    assert Room.objects.get(customer__uid=WA).status == Room.Status.CLOSED
    assert problems == []
