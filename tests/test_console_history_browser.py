"""What came before, in a real browser (Debian's Chromium, a real Daphne process): the room's
customer panel with the customer's name, number, first contact, the operators' notes and their
earlier conversations, one of them opened read-only with its events; and the search of closed
conversations by words, opened read-only too. Screenshots go to docs/screenshots/."""

import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from rooms.models import ClosureReason, RoomNote, Survey
from tests.consoles import console
from tests.factories import AgentFactory, CustomerFactory, closed_conversation
from tests.payloads import text_from
from tests.servers import post_signed

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WA = "573009100001"


def test_the_customer_panel_history_and_search(console_server, browser):
    ClosureReason.objects.get_or_create(title="Resuelto")
    carla = AgentFactory(username="carla", first_name="Carla", password="clave-segura")
    customer = CustomerFactory(
        uid=WA,
        name="Ana Pérez",
        name_edited=True,
        notes="Cliente preferente: ofrecer la línea directa.",
    )
    closed_conversation(customer, carla, "Me cobraron dos veces la cuota del préstamo", days_ago=40)
    earlier = closed_conversation(
        customer, carla, "Quiero bloquear mi tarjeta de crédito", days_ago=3, reason="Bloqueo"
    )
    RoomNote.objects.create(room=earlier, author=carla, text="Bloqueo confirmado por teléfono")
    # Ana answered the survey after that close: Carla sees the result.
    Survey.objects.create(
        room=earlier,
        customer=customer,
        status="completed",
        nps=9,
        resolved=True,
        satisfaction=4,
        comment="Muy rápido",
        asked_at=timezone.now(),
    )
    closed_conversation(
        CustomerFactory(name="Luis"), carla, "Necesito el certificado bancario", days_ago=5
    )

    page = console(browser, console_server.url, "carla", width=1400, height=900)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))

    # Ana writes again and asks for a person; Carla takes her room: the panel says who she is.
    post_signed(console_server.url, text_from(WA, "agente, otra vez con la tarjeta"))
    page.locator("#queue li button.take").click()
    panel = page.locator("#customer-panel")
    expect(panel).to_be_visible()
    expect(panel.locator("#customer-facts")).to_contain_text("Ana Pérez")
    expect(panel.locator("#customer-facts")).to_contain_text(f"+{WA}")
    expect(panel.locator("#customer-facts")).to_contain_text("Cliente 0001")  # her profile's
    expect(panel.locator("#customer-notes")).to_have_text(
        "Cliente preferente: ofrecer la línea directa."
    )
    earlier_items = panel.locator("#earlier li")
    expect(earlier_items).to_have_count(2)  # newest first
    expect(earlier_items.first).to_contain_text("Quiero bloquear mi tarjeta de crédito")
    expect(earlier_items.first).to_contain_text("Bloqueo · 2 mensajes · encuesta 9/10")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "desk-customer-panel.png"))

    # One of them, read-only: messages, the note, who took it and who closed it; no composer.
    earlier_items.first.click()
    history = page.locator("#history")
    expect(history).to_be_visible()
    expect(page.locator("#conversation")).to_be_hidden()
    expect(history.locator(".read-only")).to_have_text("Solo lectura")
    timeline = history.locator("#history-messages")
    expect(timeline).to_contain_text("Quiero bloquear mi tarjeta de crédito")
    expect(timeline.locator("li.internal-note")).to_contain_text("Bloqueo confirmado por teléfono")
    expect(timeline.locator("li.event").first).to_contain_text("Carla")
    expect(timeline.locator("li.event").last).to_contain_text(re.compile(r"Cerrada por .*Bloqueo"))
    expect(history.locator("textarea, #composer")).to_have_count(0)
    expect(history.locator("#history-survey")).to_have_text(
        "Encuesta: nos recomendaría 9/10 · resuelto: sí · satisfacción 4/5 · «Muy rápido»"
    )
    page.screenshot(path=str(SCREENSHOTS / "desk-history.png"))
    # While Carla reads, Ana writes: counted unread, not lost behind the closed conversation.
    post_signed(console_server.url, text_from(WA, "¿sigue ahí?"))
    expect(page.locator("#rooms li .unread")).to_have_text("1")
    page.click("#history-back")
    expect(page.locator("#conversation")).to_be_visible()
    expect(page.locator("#messages")).to_contain_text("agente, otra vez con la tarjeta")
    expect(page.locator("#messages")).to_contain_text("¿sigue ahí?")
    expect(page.locator("#rooms li .unread")).to_have_count(0)  # read now

    # The search: words of another customer's closed conversation, without their accent.
    page.fill("#search-q", "certificado bancario")
    page.press("#search-q", "Enter")
    results = page.locator("#search-results li")
    expect(results).to_have_count(1)
    expect(results.first).to_contain_text("Luis")
    expect(results.first.locator("mark").first).to_have_text("certificado")
    page.screenshot(path=str(SCREENSHOTS / "desk-search.png"))
    results.first.click()
    expect(page.locator("#history-title")).to_contain_text("Luis")
    expect(page.locator("#history-messages")).to_contain_text("Necesito el certificado bancario")

    # Taking a room while reading one puts the new conversation on screen.
    post_signed(console_server.url, text_from("573009100002", "agente por favor"))
    page.locator("#queue li button.take").click()
    expect(page.locator("#conversation")).to_be_visible()
    expect(page.locator("#room-title")).to_contain_text("+573009100002")

    page.fill("#search-q", "hipoteca")
    page.press("#search-q", "Enter")
    expect(results).to_have_count(1)
    expect(results.first).to_have_text("Ninguna conversación cerrada coincide.")
    assert problems == []
