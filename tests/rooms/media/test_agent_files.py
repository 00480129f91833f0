"""An agent sends a file: checked against WhatsApp's limits for its type, stored through the
storage API, uploaded to WhatsApp, sent by its media id with the caption, and ticked or failed
like a text."""

import threading

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from rooms.bot.recovery import turns_resume
from rooms.models import Message, Room
from rooms.whatsapp.client import whatsapp_client
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)

JPEG = b"\xff\xd8\xff\xe0" + b"comprobante " * 100


@pytest.fixture
def assigned(db):
    agent = AgentFactory()
    room = Room.objects.create(
        customer=CustomerFactory(uid="573006660001"),
        status=Room.Status.ASSIGNED,
        agent=agent,
        assigned_at=timezone.now(),
        last_customer_at=timezone.now(),
    )
    return agent, room


def _upload(
    client, room, content: bytes, name: str, mime_type: str, caption: str = "", **headers: str
):
    upload = SimpleUploadedFile(name, content, content_type=mime_type)
    return client.post(
        f"/agent/rooms/{room.pk}/files", {"file": upload, "caption": caption}, headers=headers
    )


def test_an_image_is_uploaded_then_sent_by_id_with_its_caption(client, assigned, whatsapp):
    agent, room = assigned
    client.force_login(agent)
    response = _upload(client, room, JPEG, "comprobante.jpg", "image/jpeg", "Su comprobante")
    assert response.status_code == 201

    (upload,) = whatsapp.uploads
    assert (upload["type"], upload["filename"], upload["size"]) == (
        "image/jpeg",
        "comprobante.jpg",
        len(JPEG),
    )
    (sent,) = whatsapp.wait_for_sent(1)
    assert sent["body"]["image"] == {"id": upload["id"], "caption": "Su comprobante"}
    stored = Message.objects.get()
    assert (stored.type, stored.author, stored.status) == ("image", "agent", "sent")
    assert stored.media_id == upload["id"]
    assert stored.payload == {"type": "image", "image": sent["body"]["image"]}
    assert stored.file.read() == JPEG
    event = room.events.get(kind="message.new")
    assert event.data["media"]["url"] == f"/files/{stored.pk}"
    # The agent sees their own file through the same checked view.
    assert client.get(f"/files/{stored.pk}").status_code == 200


def test_a_document_keeps_its_file_name(client, assigned, whatsapp):
    agent, room = assigned
    client.force_login(agent)
    _upload(client, room, b"%PDF-1.4 x", "condiciones.pdf", "application/pdf")
    (sent,) = whatsapp.wait_for_sent(1)
    assert sent["body"]["document"]["filename"] == "condiciones.pdf"
    assert "caption" not in sent["body"]["document"]


@pytest.mark.parametrize(
    ("name", "content", "mime_type", "error"),
    [
        (
            "big.jpg",
            b"\xff" * (5 * 1024 * 1024 + 1),
            "image/jpeg",
            "El archivo es demasiado grande: en WhatsApp una imagen puede tener como máximo "
            "5,0\xa0MB.",
        ),
        (
            "setup.exe",
            b"MZ",
            "application/x-msdownload",
            "WhatsApp no admite archivos de tipo application/x-msdownload.",
        ),
        ("empty.pdf", b"", "application/pdf", "El archivo está vacío."),
    ],
)
def test_what_whatsapp_would_refuse_is_refused_before_anything_is_stored(
    client, assigned, whatsapp, name, content, mime_type, error
):
    agent, room = assigned
    client.force_login(agent)
    response = _upload(client, room, content, name, mime_type)
    assert response.status_code == 400
    assert response.json() == {"code": "invalid", "error": error}
    assert not Message.objects.exists()
    assert whatsapp.uploads == []
    _dirs, files = (
        default_storage.listdir(f"rooms/{room.pk}")
        if default_storage.exists(f"rooms/{room.pk}")
        else ([], [])
    )
    assert files == []


def test_another_agents_room_is_refused(client, assigned, whatsapp):
    _agent, room = assigned
    client.force_login(AgentFactory(username="not-the-agent"))
    response = _upload(client, room, JPEG, "a.jpg", "image/jpeg")
    assert response.status_code == 403
    assert not Message.objects.exists()


def test_a_failed_upload_fails_the_message_with_metas_code(client, assigned, whatsapp):
    agent, room = assigned
    client.force_login(agent)
    whatsapp.fail_with_code(131053)
    assert _upload(client, room, JPEG, "a.jpg", "image/jpeg").status_code == 201
    stored = Message.objects.get()
    assert (stored.status, stored.error_code) == ("failed", 131053)
    assert whatsapp.sent == []
    status = room.events.filter(kind="message.status").latest("seq")
    assert status.data["status"] == "failed"


def test_a_file_to_a_twilio_customer_is_refused_with_the_reason(client, whatsapp):
    agent = AgentFactory(username="agent-twilio")
    room = Room.objects.create(
        customer=CustomerFactory(uid="573006660009", provider="twilio"),
        status=Room.Status.ASSIGNED,
        agent=agent,
        last_customer_at=timezone.now(),
    )
    client.force_login(agent)
    response = _upload(client, room, JPEG, "a.jpg", "image/jpeg")
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid",
        "error": "Todavía no se pueden enviar archivos a clientes que escriben por Twilio.",
    }
    assert not Message.objects.exists()


def test_a_webp_from_an_agent_goes_as_a_document(client, assigned, whatsapp):
    agent, room = assigned
    client.force_login(agent)
    _upload(client, room, b"RIFF\x00\x00\x00\x00WEBPVP8 ", "plano.webp", "image/webp", "El plano")
    (sent,) = whatsapp.wait_for_sent(1)
    assert sent["body"]["type"] == "document"
    assert sent["body"]["document"]["caption"] == "El plano"


def test_a_signed_out_console_gets_401_not_the_login_page(client, assigned):
    _agent, room = assigned
    response = _upload(client, room, JPEG, "a.jpg", "image/jpeg")
    assert response.status_code == 401
    assert response.json() == {
        "code": "signed_out",
        "error": "Tu sesión terminó: vuelve a ingresar.",
    }


ENGLISH = (
    "The file is too large: on WhatsApp an image can be at most 5.0\xa0MB.",
    "The file is empty.",
)
SPANISH = (
    "El archivo es demasiado grande: en WhatsApp una imagen puede tener como máximo 5,0\xa0MB.",
    "El archivo está vacío.",
)


@pytest.mark.parametrize(
    ("accept_language", "selected", "said"),
    [
        ("en-US,en;q=0.9", None, ENGLISH),
        ("es-CO,es;q=0.9", None, SPANISH),
        ("", None, SPANISH),  # no preference: LANGUAGE_CODE
        ("es-CO,es;q=0.9", "en", ENGLISH),  # the console's language selector wins
    ],
    ids=["english", "spanish", "default", "selector"],
)
def test_a_refused_file_is_explained_in_the_agents_language(
    client, assigned, whatsapp, accept_language, selected, said
):
    agent, room = assigned
    client.force_login(agent)
    if selected:
        client.cookies["django_language"] = selected  # what set_language sets
    headers = {"Accept-Language": accept_language} if accept_language else {}
    big = _upload(client, room, b"\xff" * (5 * 1024 * 1024 + 1), "a.jpg", "image/jpeg", **headers)
    nothing = _upload(client, room, b"", "a.pdf", "application/pdf", **headers)
    too_large, empty = said
    assert (big.status_code, big.json()) == (400, {"code": "invalid", "error": too_large})
    assert (nothing.status_code, nothing.json()) == (400, {"code": "invalid", "error": empty})
    assert not Message.objects.exists()


def test_an_upload_that_timed_out_is_uploaded_again_and_sent_once(
    client, assigned, whatsapp, settings
):
    """A timeout of the upload is not a send whose outcome is unknown: nothing reached the
    customer, so it is simply tried again."""
    agent, room = assigned
    client.force_login(agent)
    settings.WHATSAPP_UPLOAD_TIMEOUT = 0.5
    whatsapp_client.cache_clear()
    whatsapp.delay = 1.5  # the first upload's answer is too slow...

    def answer_promptly_after_the_first_upload() -> None:
        whatsapp.wait_until(lambda: len(whatsapp.requests) >= 1, 10, "the first upload")
        whatsapp.delay = 0  # ...the next is prompt

    helper = threading.Thread(target=answer_promptly_after_the_first_upload)
    helper.start()
    try:
        response = _upload(client, room, JPEG, "a.jpg", "image/jpeg")
    finally:
        helper.join()
        whatsapp_client.cache_clear()
    assert response.status_code == 201
    stored = Message.objects.get()
    assert (stored.status, stored.send_attempts) == ("sent", 1)
    assert len(whatsapp.sent) == 1
    uploads = [r for r in whatsapp.requests if r["path"].endswith("/media")]
    assert len(uploads) == 2  # the first answer never came; the file went again


def test_a_resend_after_a_crash_sends_the_same_upload(client, assigned, whatsapp):
    """The upload is kept with the message: recovery sends by the same media id, and uploads
    nothing again."""
    agent, room = assigned
    client.force_login(agent)
    _upload(client, room, JPEG, "a.jpg", "image/jpeg")
    stored = Message.objects.get()
    (upload,) = whatsapp.uploads
    assert stored.media_id == upload["id"]
    # The process died after the upload, before the send: the message as it would be left.
    Message.objects.filter(pk=stored.pk).update(
        status="pending",
        wa_message_id=None,
        send_attempts=0,
        created_at=timezone.now() - timezone.timedelta(minutes=10),
    )
    whatsapp.sent.clear()
    turns_resume(older_than_seconds=60)
    (sent,) = whatsapp.wait_for_sent(1)
    assert sent["body"]["image"]["id"] == upload["id"]
    assert len(whatsapp.uploads) == 1
