"""Areas in a real browser (Debian's Chromium, a real Daphne process), two agents in two
areas: a level 1 agent sends a room to level 2's queue with a note; the level 2 agent, who
never saw level 1's queue, sees it arrive with the note and takes it. Screenshot:
docs/screenshots/desk-area-transfer.png."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from rooms.models import Area, Room
from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import AppProcess, post_signed

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def server(fake_vendors) -> Iterator[AppProcess]:
    process = AppProcess.daphne(AUTO_ASSIGN="0").start()
    yield process
    process.stop()


def _console(browser: Browser, server: AppProcess, username: str) -> Page:
    page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.goto(f"{server.url}/agent/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "clave-segura")
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("conectado")
    return page


def test_a_room_goes_from_level_1_to_level_2_with_a_note(server, browser):
    level_2 = Area.objects.create(name="Nivel 2", code="level-2")
    AgentFactory(username="ana", first_name="Ana", password="clave-segura")
    lucia = AgentFactory(username="lucia", first_name="Lucía", password="clave-segura")
    level_2.agents.add(lucia)
    ana, lucia_page = _console(browser, server, "ana"), _console(browser, server, "lucia")
    problems: list[str] = []
    for page in (ana, lucia_page):
        page.on("pageerror", lambda error: problems.append(str(error)))

    post_signed(server.url, text_from("573009200001", "agente, me suplantaron"))
    expect(ana.locator("#queue li")).to_have_count(1)
    expect(lucia_page.locator("#queue li")).to_have_count(0)  # level 1's queue is not hers

    ana.locator("#queue li button.take").click()
    expect(ana.locator("#rooms li")).to_have_count(1)
    ana.select_option("#transfer-to", label="Cola de Nivel 2")
    ana.fill("#transfer-note", "Posible fraude: ya validé su identidad.")
    ana.click("#transfer")
    expect(ana.locator("#toast")).to_have_text("Conversación enviada a la cola de Nivel 2.")
    expect(ana.locator("#rooms li")).to_have_count(0)

    queued = lucia_page.locator("#queue li")
    expect(queued).to_have_count(1)
    expect(queued.locator(".note")).to_have_text("Ana: Posible fraude: ya validé su identidad.")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    lucia_page.screenshot(path=str(SCREENSHOTS / "desk-area-transfer.png"))
    queued.locator("button.take").click()
    expect(lucia_page.locator("#rooms li")).to_have_count(1)
    room = Room.objects.get()
    assert (room.area, room.agent) == (level_2, lucia)
    assert problems == []
