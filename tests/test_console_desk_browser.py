"""The agent's working day in a real browser, two agents at once (Debian's Chromium through
Playwright, a real Daphne process): message times, the queue's preview, hand-off note and live
waiting time, unread counts and the tab's title, desktop notifications once allowed, no "Tomar"
at capacity, a transfer list of who is free and the receiving agent told who sent the room and
why, closing that asks for its reason and confirms. Screenshots go to docs/screenshots/."""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from rooms.models import CannedReply, ClosureReason, Room, RoomNote
from tests.consoles import console
from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import post_signed
from users.models import AgentProfile

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
# Desktop notifications, recorded: headless Chromium shows none.
RECORD_NOTIFICATIONS = """
window.shown = [];
window.Notification = class {
  static permission = "granted";
  static requestPermission() { return Promise.resolve("granted"); }
  constructor(title, options) { window.shown.push({ title, body: options && options.body }); }
};
"""


def test_a_working_day_with_two_agents(console_server, browser, whatsapp):
    ClosureReason.objects.get_or_create(title="Resuelto")
    CannedReply.objects.create(
        title="Saludo",
        shortcut="saludo",
        text="Hola {customer_first_name}, soy {agent_first_name}. ¿En qué te ayudo?",
    )
    AgentFactory(username="ana", first_name="Ana", password="clave-segura", capacity=2)
    AgentFactory(username="beto", first_name="Beto", password="clave-segura")
    ana = console(browser, console_server.url, "ana", init_script=RECORD_NOTIFICATIONS)
    beto = console(browser, console_server.url, "beto", init_script=RECORD_NOTIFICATIONS)
    problems: list[str] = []
    ana.on("pageerror", lambda error: problems.append(str(error)))
    ana.check("#pref-notify")

    # The queue: who, the first words of what they wrote, the bot's note, a waiting time that moves.
    post_signed(
        console_server.url, text_from("573009000001", "agente, tengo un cobro que no reconozco")
    )
    queued = ana.locator("#queue li")
    expect(queued).to_have_count(1)
    expect(queued.locator(".preview")).to_have_text("agente, tengo un cobro que no reconozco")
    waiting = queued.locator(".waiting")
    expect(waiting).to_contain_text(re.compile(r"espera \d+ s"))
    before = waiting.inner_text()
    time.sleep(2.2)
    assert waiting.inner_text() != before  # ticking, not frozen at the snapshot's value
    assert ana.evaluate("window.shown.length") >= 1  # "Cliente en cola"
    expect(ana).to_have_title(re.compile(r"^\(1\) chatbridge"))
    ana.uncheck("#pref-title")  # the agent's switch: no count in the tab's title
    expect(ana).to_have_title(re.compile(r"^chatbridge"))
    ana.check("#pref-title")
    expect(ana).to_have_title(re.compile(r"^\(1\) chatbridge"))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ana.screenshot(path=str(SCREENSHOTS / "desk-queue.png"))

    queued.locator("button.take").click()
    expect(ana.locator("#messages li").first).to_contain_text(re.compile(r"Cliente · \d{2}:\d{2}"))

    # A canned reply: "/" lists them, Enter puts the chosen one in the composer, filled, to read.
    ana.locator("#rooms li").first.click()
    ana.fill("#text", "")
    ana.type("#text", "/sal")
    expect(ana.locator("#canned li")).to_have_count(1)
    ana.screenshot(path=str(SCREENSHOTS / "desk-canned.png"))
    ana.keyboard.press("Enter")
    expect(ana.locator("#text")).to_have_value("Hola Cliente, soy Ana. ¿En qué te ayudo?")
    ana.keyboard.press("Enter")
    whatsapp.wait_for_sent(3, timeout=10)
    assert whatsapp.sent[-1]["text"] == "Hola Cliente, soy Ana. ¿En qué te ayudo?"

    # An internal note: shown apart, kept with the room, never sent to WhatsApp.
    sent = len(whatsapp.sent)
    ana.check("#internal")
    ana.fill("#text", "Cliente molesto: revisar el cobro del 28/11 con fraudes.")
    ana.keyboard.press("Enter")
    note = ana.locator("#messages li.internal-note")
    expect(note).to_contain_text("Nota interna de Ana")
    expect(note).to_contain_text("revisar el cobro del 28/11 con fraudes")
    ana.screenshot(path=str(SCREENSHOTS / "desk-note.png"))
    ana.uncheck("#internal")
    time.sleep(0.5)
    assert len(whatsapp.sent) == sent
    assert RoomNote.objects.get().text == "Cliente molesto: revisar el cobro del 28/11 con fraudes."

    # A second customer: Ana takes that room too; she is now at her capacity of 2.
    post_signed(console_server.url, text_from("573009000002", "agente por favor"))
    expect(queued).to_have_count(1)
    ana.keyboard.press("Alt+n")  # the next waiting customer
    expect(ana.locator("#rooms li")).to_have_count(2)
    post_signed(console_server.url, text_from("573009000003", "agente ya"))
    expect(queued).to_have_count(1)
    take = queued.locator("button.take")
    expect(take).to_be_disabled()
    assert "2 de 2" in take.get_attribute("title")

    # The first customer writes while Ana looks at the second room: counted, announced.
    ana.locator("#rooms li").nth(1).click()
    shown = ana.evaluate("window.shown.length")
    post_signed(console_server.url, text_from("573009000001", "¿siguen ahí?"))
    first = ana.locator("#rooms li").first
    expect(first.locator(".unread")).to_have_text("1")
    expect(ana).to_have_title(re.compile(r"^\(2\) chatbridge"))  # one unread, one queued
    ana.wait_for_function(f"window.shown.length > {shown}")
    assert ana.evaluate("window.shown[window.shown.length - 1].body") == "¿siguen ahí?"
    first.click()
    expect(first.locator(".unread")).to_have_count(0)

    # The transfer list holds who can take the room now; Beto is told who sent it and why.
    options = ana.locator("#transfer-to option")
    expect(options).to_have_count(1)
    expect(options.first).to_contain_text("Beto")
    ana.fill("#transfer-note", "Cobro de $45.000 del 28/11; ya validé su identidad.")
    ana.click("#transfer")
    expect(beto.locator("#toast")).to_contain_text(
        "Ana te transfirió una conversación: «Cobro de $45.000 del 28/11; ya validé su identidad.»"
    )
    expect(beto.locator("#rooms li")).to_have_count(1)
    beto.screenshot(path=str(SCREENSHOTS / "desk-transfer.png"))
    expect(ana.locator("#rooms li")).to_have_count(1)
    expect(take).to_be_enabled()  # a place is free again

    # Closing asks for the reason, confirms, and says it is done.
    beto.locator("#rooms li").first.click()
    beto.click("#close")
    expect(beto.locator("#toast")).to_have_text("Elige el motivo de cierre.")
    assert Room.objects.filter(status="closed").count() == 0
    beto.select_option("#reason", label="Resuelto")
    beto.once("dialog", lambda dialog: dialog.accept())
    beto.click("#close")
    expect(beto.locator("#toast")).to_have_text("Conversación cerrada.")
    expect(beto.locator("#rooms li")).to_have_count(0)
    assert Room.objects.filter(status="closed").count() == 1
    assert AgentProfile.objects.get(user__username="beto").capacity == 5
    assert problems == []
