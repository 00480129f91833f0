"""The agent console in a real browser: headless Chromium (Debian's) driven by Playwright, against
a real Daphne process, the fake vendors and the Redis channel layer."""

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from rooms.models import Message, Room
from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import AppProcess, RedisServer, post_signed

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "var" / "screenshots"
WA = "573004040404"


@pytest.fixture
def server(fake_vendors) -> Iterator[AppProcess]:
    process = AppProcess.daphne(AUTO_ASSIGN="0").start()
    yield process
    process.stop()


@pytest.fixture
def page(browser) -> Page:
    return browser.new_page()


def test_agent_takes_a_room_and_replies_from_the_console(server, page, whatsapp):
    AgentFactory(username="ana", first_name="Ana", password="clave-segura")
    problems: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(f"{server.url}/agent/")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "clave-segura")
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("conectado")

    # A customer asks for a human: the room appears in the queue without a reload.
    post_signed(server.url, text_from(WA, "quiero un asesor"))
    queued = page.locator("#queue li")
    expect(queued).to_have_count(1)
    queued.locator("button.take").click()

    conversation = page.locator("#messages")
    expect(conversation).to_contain_text("quiero un asesor")
    expect(page.locator("#room-window")).to_contain_text("Ventana de 24 h: quedan 23 h")

    # The customer writes again: it shows up live.
    post_signed(server.url, text_from(WA, "<b>hola</b> ¿me ayudas?"))
    expect(conversation).to_contain_text("<b>hola</b> ¿me ayudas?")  # shown as text, not HTML
    assert page.locator("#messages b").count() == 0

    page.fill("#text", "Claro, soy Ana. ¿En qué te ayudo?")
    page.keyboard.press("Enter")
    whatsapp.wait_for_sent(2, to=WA, timeout=10)
    assert [m["text"] for m in whatsapp.sent_to(WA)][-1] == "Claro, soy Ana. ¿En qué te ayudo?"
    expect(page.locator("#messages li.agent .tick")).to_have_text("✓")

    # The page works under its Content-Security-Policy: nothing blocked, no script error.
    assert problems == []
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console.png"), full_page=True)
    room = Room.objects.get()
    assert room.status == "assigned"
    assert Message.objects.filter(room=room, author="agent", status="sent").count() == 1


def test_console_reconnects_and_catches_up(server, page, fake_vendors):
    AgentFactory(username="ana", first_name="Ana", password="clave-segura")
    post_signed(server.url, text_from(WA, "agente"))
    page.goto(f"{server.url}/agent/")
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", "clave-segura")
    page.click("button[type=submit]")
    page.locator("#queue li button.take").click()
    expect(page.locator("#messages")).to_contain_text("agente")

    # The console's server goes away; the customer writes through another one meanwhile.
    server.stop()
    expect(page.locator("#connection")).to_have_text("desconectado")
    other = AppProcess.daphne(AUTO_ASSIGN="0").start()
    try:
        post_signed(other.url, text_from(WA, "mensaje durante la caída"))
    finally:
        other.stop()
    restarted = AppProcess(server.args, server.env, server.port).start()
    try:
        expect(page.locator("#messages")).to_contain_text("mensaje durante la caída", timeout=20000)
        expect(page.locator("#connection")).to_have_text("conectado")
    finally:
        restarted.stop()


# Counts the console's connection attempts (an init script runs before the page's own).
COUNT_SOCKETS = """
(() => {
  const Native = window.WebSocket;
  window.socketsOpened = 0;
  function Counted(...args) { window.socketsOpened += 1; return new Native(...args); }
  Counted.prototype = Native.prototype;
  for (const name of ["CONNECTING", "OPEN", "CLOSING", "CLOSED"]) Counted[name] = Native[name];
  window.WebSocket = Counted;
})();
"""


def test_with_the_channel_layer_down_the_console_backs_off(fake_vendors, page, record_fault):
    """The retry count reset on every accepted handshake, so with the layer's Redis stopped each
    console reconnected about once a second for as long as it was down."""
    layer = RedisServer().start()
    server = AppProcess.daphne(AUTO_ASSIGN="0", CHANNELS_REDIS_URL=layer.url).start()
    try:
        AgentFactory(username="ana", first_name="Ana", password="clave-segura")
        page.add_init_script(COUNT_SOCKETS)
        page.goto(f"{server.url}/agent/")
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", "clave-segura")
        page.click("button[type=submit]")
        expect(page.locator("#connection")).to_have_text("conectado")

        layer.stop()
        expect(page.locator("#connection")).to_have_text("desconectado")
        page.evaluate("window.socketsOpened = 0")
        page.wait_for_timeout(12_000)
        attempts = page.evaluate("window.socketsOpened")
        # Back-off 0.5, 1, 2, 4, 8 s (each scaled by 0.5 to 1): at most 6 in 12 s; it was 12+.
        assert 2 <= attempts <= 6, attempts

        layer.start()  # back on its port: the console is back within the longest wait (10 s)
        expect(page.locator("#connection")).to_have_text("conectado", timeout=25_000)
        record_fault(
            "Channel layer's Redis stopped under an open console (Chromium)",
            done="Redis stopped for 12 s, then started again",
            held="the console backs off across attempts (was about one a second); reconnects",
            figures=f"{attempts} attempts in 12 s",
        )
    finally:
        server.stop()
        layer.cleanup()
