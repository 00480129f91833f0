"""The admin as an operator sees it, in a real browser (Debian's Chromium, a real Daphne
process): a room's page with a long unbroken message stays as wide as the window, times read
in the business time zone, no delete button anywhere on the record, and the customer's page
names who changed what. Screenshots go to docs/screenshots/."""

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from rooms.models import Message, Room
from tests.factories import CustomerFactory
from tests.servers import AppProcess

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def server(fake_vendors) -> Iterator[AppProcess]:
    process = AppProcess.daphne(BUSINESS_TIMEZONE="America/Bogota").start()
    yield process
    process.stop()


def test_an_operator_reads_a_room_and_edits_a_customer(server, browser):
    User.objects.create_superuser("operadora", password="clave-segura", first_name="Olga")
    customer = CustomerFactory(name="Ana Pérez")
    room = Room.objects.create(customer=customer, status=Room.Status.BOT)
    Message.objects.create(room=room, direction="in", author="customer", text="x" * 5000, status="")
    Message.objects.create(
        room=room, direction="in", author="customer", text="¿Me ayudan con mi tarjeta?"
    )

    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(f"{server.url}/admin/login/?next=/admin/")
    page.fill("input[name=username]", "operadora")
    page.fill("input[name=password]", "clave-segura")
    page.click("input[type=submit]")
    expect(page.locator("#site-name")).to_contain_text("chatbridge")

    page.goto(f"{server.url}/admin/rooms/room/{room.pk}/change/")
    expect(page.locator("body")).to_contain_text("¿Me ayudan con mi tarjeta?")
    # The 5,000 x's wrap: the page is no wider than the window.
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 1280, width
    expect(page.locator("a.deletelink")).to_have_count(0)
    expect(page.locator("a.addlink[href='/admin/rooms/room/add/']")).to_have_count(0)
    # Opened a moment ago, read in Bogotá (UTC-5), to the minute: no microseconds.
    expect(page.locator(".field-opened_at .readonly")).to_have_text(
        re.compile(r"^\D+ \d+, \d{4}, ")
    )
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "admin-room.png"), full_page=False)

    page.goto(f"{server.url}/admin/users/customer/{customer.pk}/change/")
    page.fill("textarea[name=notes]", "Prefiere que la llamen por la mañana.")
    page.click("input[name=_continue]")
    changes = page.locator(".field-changes .readonly")
    expect(changes).to_contain_text("Olga")
    expect(changes).to_contain_text("Changed Operators")
    expect(page.locator("a.deletelink")).to_have_count(0)
    page.screenshot(path=str(SCREENSHOTS / "admin-customer.png"), full_page=True)
