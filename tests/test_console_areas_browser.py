"""Areas in a real browser (Debian's Chromium, a real Daphne process), two agents in two
areas: a level 1 agent sends a room to level 2's queue with a note; the level 2 agent, who
never saw level 1's queue, sees it arrive with the note and takes it. Screenshot:
docs/screenshots/desk-area-transfer.png."""

from pathlib import Path

import pytest
from playwright.sync_api import expect

from rooms.models import Area, Room
from tests.consoles import console
from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import post_signed

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def test_a_room_goes_from_level_1_to_level_2_with_a_note(console_server, browser):
    level_2 = Area.objects.create(name="Nivel 2", code="level-2")
    AgentFactory(username="ana", first_name="Ana", password="clave-segura")
    lucia = AgentFactory(username="lucia", first_name="Lucía", password="clave-segura")
    level_2.agents.add(lucia)
    ana, lucia_page = (
        console(browser, console_server.url, "ana", width=1400, height=900),
        console(browser, console_server.url, "lucia", width=1400, height=900),
    )
    problems: list[str] = []
    for page in (ana, lucia_page):
        page.on("pageerror", lambda error: problems.append(str(error)))

    post_signed(console_server.url, text_from("573009200001", "agente, me suplantaron"))
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
