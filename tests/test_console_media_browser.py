"""The console shows each kind of message a customer can send, in a real browser (Debian's
Chromium through Playwright, a real Daphne process): images inline through the authenticated file
view, audio and video players, documents with name and size, a location with its map link, a
contact card, a quoted reply, an ad referral, an edit, a deletion, a file that could not be
fetched; an agent attaches a file; outside the 24-hour window only templates are offered, with
the text the customer will read. Screenshots go to docs/screenshots/."""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from playwright.sync_api import Page, expect

from rooms.models import Message, MessageTemplate, Room
from tests.factories import AgentFactory, CustomerFactory
from tests.payloads import png
from tests.servers import AppProcess

pytestmark = pytest.mark.django_db(transaction=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


@pytest.fixture
def server(fake_vendors, tmp_path) -> Iterator[AppProcess]:
    # The server keeps and serves files from the folder this test's storage writes to.
    process = AppProcess.daphne(AUTO_ASSIGN="0", MEDIA_ROOT=str(tmp_path / "media")).start()
    yield process
    process.stop()


@pytest.fixture
def page(browser) -> Page:
    return browser.new_page(viewport={"width": 1280, "height": 2200})


def _inbound(room: Room, kind: str, text: str = "", **fields) -> Message:
    return Message.objects.create(
        room=room,
        direction="in",
        author="customer",
        type=kind,
        text=text,
        handled_at=timezone.now(),
        **fields,
    )


def _file(room: Room, kind: str, content: bytes, mime_type: str, name: str = "", **fields):
    stored = default_storage.save(f"rooms/{room.pk}/seeded-{kind}", ContentFile(content))
    return _inbound(
        room,
        kind,
        file=stored,
        mime_type=mime_type,
        file_name=name,
        media_size=len(content),
        media_status="stored",
        media_id="1",
        **fields,
    )


def _a_day_of_messages(room: Room) -> None:
    first = _inbound(room, "text", "Hola, tengo un problema con una transferencia")
    _file(room, "image", png(320, 200, (69, 123, 157)), "image/png", text="así me salió")
    _file(room, "sticker", png(128, 128, (233, 196, 106)), "image/webp")
    _file(room, "audio", b"OggS" + b"\x00" * 200, "audio/ogg")
    _file(room, "video", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200, "video/mp4")
    _file(room, "document", b"%PDF-1.4\n" + b"x" * 4000, "application/pdf", "extracto-marzo.pdf")
    _inbound(
        room,
        "location",
        "Sucursal Centro — Cra 7 # 12-30",
        payload={
            "location": {
                "latitude": 4.6097,
                "longitude": -74.0817,
                "name": "Sucursal Centro",
                "address": "Cra 7 # 12-30",
            }
        },
    )
    _inbound(
        room,
        "contacts",
        "Laura Gómez",
        payload={
            "contacts": [
                {
                    "name": {"formatted_name": "Laura Gómez"},
                    "phones": [{"phone": "+57 300 111 2222"}],
                }
            ]
        },
    )
    _inbound(
        room,
        "text",
        "este de aquí",
        quoted={"id": first.pk, "author": "customer", "type": "text", "text": first.text},
    )
    _inbound(
        room,
        "text",
        "quiero la tarjeta del anuncio",
        payload={
            "referral": {
                "headline": "Tarjeta sin cuota",
                "body": "Pídela hoy",
                "source_url": "https://fb.me/ad",
                "source_type": "ad",
            }
        },
    )
    # A customer's words never become markup or a script link.
    _inbound(
        room,
        "text",
        '<img src=x onerror="document.title=1">',
        payload={"referral": {"headline": "<b>oferta</b>", "source_url": "javascript:alert(1)"}},
    )
    _inbound(room, "text", "mi cuenta termina en 4321", edited_at=timezone.now())
    _inbound(room, "text", "me equivoqué de chat", deleted_at=timezone.now())
    _inbound(
        room,
        "image",
        "",
        media_id="2",
        mime_type="image/jpeg",
        media_status="failed",
        media_error="131052",
    )


def _login(page: Page, server: AppProcess) -> None:
    page.goto(f"{server.url}/agent/")
    page.fill("input[name=username]", "marta")
    page.fill("input[name=password]", "clave-segura")
    page.click("button[type=submit]")
    expect(page.locator("#connection")).to_have_text("conectado")
    page.locator("#rooms li").first.click()


def test_every_kind_of_message_attachments_and_templates(server, page, whatsapp, tmp_path):
    agent = AgentFactory(username="marta", first_name="Marta", password="clave-segura")
    room = Room.objects.create(
        customer=CustomerFactory(uid="573008880001", name="Ana María Pérez"),
        status=Room.Status.ASSIGNED,
        agent=agent,
        assigned_at=timezone.now(),
        last_customer_at=timezone.now(),
    )
    _a_day_of_messages(room)
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    _login(page, server)

    messages = page.locator("#messages")
    image = messages.locator("img.thumb")
    expect(image).to_have_count(1)
    # Loaded through /files/<id> with the agent's session: the browser decoded a real image.
    expect(image).to_have_js_property("naturalWidth", 320)
    expect(messages.locator("img.sticker")).to_have_js_property("naturalWidth", 128)
    expect(messages.locator("audio[controls]")).to_have_count(1)
    expect(messages.locator("video[controls]")).to_have_count(1)
    expect(messages.locator("a.document")).to_contain_text("extracto-marzo.pdf")
    expect(messages.locator("a.document")).to_contain_text("4 KB")  # 4009 bytes
    location = messages.locator(".location")
    expect(location).to_contain_text("4.6097, -74.0817")
    assert "mlat=4.6097" in location.locator("a").get_attribute("href")
    expect(messages.locator(".contact-card")).to_contain_text("+57 300 111 2222")
    expect(messages.locator("blockquote.quoted")).to_contain_text("problema con una transferencia")
    expect(messages.locator(".referral").first).to_contain_text("Tarjeta sin cuota")
    expect(messages).to_contain_text("(editado)")
    expect(messages.locator("li.deleted")).to_contain_text("El cliente eliminó este mensaje.")
    expect(messages.locator(".media-error")).to_have_text("No se pudo obtener el archivo (131052)")
    expect(messages).to_contain_text('<img src=x onerror="document.title=1">')
    assert messages.locator("img[src=x]").count() == 0
    assert messages.locator("b").count() == 0
    assert page.locator("a[href^=javascript]").count() == 0
    assert page.title() != "1"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "console-messages.png"), full_page=True)

    # The agent attaches a document: checked, uploaded to WhatsApp, sent by id, shown with ticks.
    attachment = tmp_path / "condiciones.pdf"
    attachment.write_bytes(b"%PDF-1.4\ncondiciones")
    page.fill("#text", "Le envío las condiciones")
    page.set_input_files("#file", str(attachment))
    (sent,) = whatsapp.wait_for_sent(1, timeout=10)
    assert sent["body"]["document"]["filename"] == "condiciones.pdf"
    assert sent["body"]["document"]["caption"] == "Le envío las condiciones"
    assert whatsapp.uploads[0]["size"] == attachment.stat().st_size
    expect(messages.locator("li.agent a.document")).to_contain_text("condiciones.pdf")
    expect(messages.locator("li.agent .tick").last).to_have_text("✓")
    # A file WhatsApp does not carry is refused in the page, before any upload.
    exe = tmp_path / "setup.exe"
    exe.write_bytes(b"MZ")
    page.set_input_files("#file", str(exe))
    expect(page.locator("#toast")).to_contain_text("WhatsApp no admite")
    assert len(whatsapp.uploads) == 1

    # WhatsApp says the window has closed (131047) although the console thought it open: the
    # composer gives way to the templates at once.
    whatsapp.templates = {("seguimiento_caso", "es")}
    MessageTemplate.objects.create(
        name="seguimiento_caso",
        language="es",
        header="Banco de Prueba",
        body="Hola {{1}}, soy {{2}} del banco. Seguimos con tu caso: respóndenos para continuar.",
        parameters=["customer_first_name", "agent_first_name"],
    )
    page.reload()  # the console learns of the new template on connecting
    expect(page.locator("#connection")).to_have_text("conectado")
    page.locator("#rooms li").first.click()
    whatsapp.fail_with_code(131047)
    page.fill("#text", "¿Sigue ahí?")
    page.keyboard.press("Enter")
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.locator("#templates")).to_be_visible()

    # A day later the window has closed by the clock too: still the templates only.
    Room.objects.filter(pk=room.pk).update(last_customer_at=timezone.now() - dt.timedelta(hours=25))
    page.reload()
    expect(page.locator("#connection")).to_have_text("conectado")
    page.locator("#rooms li").first.click()
    expect(page.locator("#composer")).to_be_hidden()
    expect(page.locator("#room-window")).to_contain_text("cerrada")
    preview = page.locator("#template-preview")
    expect(preview).to_have_text(
        "Banco de Prueba\n"
        "Hola Ana, soy Marta del banco. Seguimos con tu caso: respóndenos para continuar."
    )
    previewed = preview.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "console-template.png"), full_page=True)
    page.click("#send-template")
    template_sent = whatsapp.wait_for_sent(2, timeout=10)[-1]
    assert template_sent["body"]["template"]["name"] == "seguimiento_caso"
    expect(messages.locator("li.agent").last).to_contain_text("Hola Ana, soy Marta del banco")
    # What the agent saw is what was stored as sent, to the letter.
    assert Message.objects.get(type="template").text == previewed
    assert problems == []
