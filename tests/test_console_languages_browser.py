"""The console in the agent's language, in a real browser (Debian's Chromium through Playwright, a
real Daphne process): an English browser gets the login page, the console and the server's
refusals in English; the header's selector switches to Spanish, the websocket's refusals too.
The screenshot goes to docs/screenshots/console-english.png."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from rooms.models import ClosureReason
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


def _close_with_a_reason_gone_meanwhile(page: Page, title: str) -> None:
    """Choose a closure reason, have an operator delete it, then close: the server refuses."""
    reason = ClosureReason.objects.create(title=title)
    page.reload()  # the console learns of the reason on connecting
    page.locator("#rooms li").first.click()
    page.select_option("#reason", label=title)
    reason.delete()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#close")


def test_an_english_browser_gets_english_and_the_selector_switches_to_spanish(
    server, browser: Browser, whatsapp
):
    AgentFactory(username="ana", first_name="Ana", password="clave-segura", capacity=1)
    context = browser.new_context(locale="en-US", viewport={"width": 1280, "height": 900})
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    page.goto(f"{server.url}/agent/")
    expect(page.locator("button[type=submit]")).to_have_text("Sign in")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "clave-segura")
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("connected")
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h2:has(#queue-count)")).to_contain_text("In the queue")
    expect(page.locator("#empty")).to_have_text("Choose a conversation or take one from the queue.")

    # Two customers ask for a person: Ana takes one and is then at her capacity of 1.
    post_signed(server.url, text_from("573009100001", "agent please"))
    queued = page.locator("#queue li")
    expect(queued.locator(".waiting")).to_contain_text(re.compile(r"waiting \d+ s"))
    queued.locator("button.take").click()
    expect(page.locator("#messages li").first).to_contain_text(re.compile(r"^Customer · "))
    expect(page.locator("#room-window")).to_contain_text("24-hour window: 23 h")
    expect(page.locator("#release")).to_have_text("Back to the queue")
    post_signed(server.url, text_from("573009100002", "agent"))
    take = queued.locator("button.take")
    expect(take).to_have_text("Take")
    expect(take).to_be_disabled()
    expect(take).to_have_attribute(
        "title", "You have 1 of 1 conversation: close or transfer it to take another."
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-english.png"))

    # A refusal of the websocket: the sentence alone, in English, no code beside it.
    _close_with_a_reason_gone_meanwhile(page, "Solved by phone")
    expect(page.locator("#toast")).to_have_text(
        "That closure reason no longer exists: choose another."
    )
    # A refusal of the file upload (an HTTP view), in English too.
    page.set_input_files(
        "#file", files=[{"name": "empty.pdf", "mimeType": "application/pdf", "buffer": b""}]
    )
    expect(page.locator("#toast")).to_have_text("The file is empty.")

    # The header's selector: the same console, now in Spanish, although the browser says English.
    page.select_option("#language", label="Español")
    expect(page.locator("#connection")).to_have_text("conectado")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("#language")).to_have_value("es")
    expect(page.locator("h2:has(#queue-count)")).to_contain_text("En cola")
    expect(take).to_have_text("Tomar")
    expect(take).to_have_attribute(
        "title", "Ya atiendes 1 de 1 conversación: ciérrala o transfiérela para tomar otra."
    )
    _close_with_a_reason_gone_meanwhile(page, "Resuelto por teléfono")
    expect(page.locator("#toast")).to_have_text("Ese motivo de cierre ya no existe: elige otro.")
    expect(page.locator("#messages li").first).to_contain_text(re.compile(r"^Cliente · "))
    assert problems == []
