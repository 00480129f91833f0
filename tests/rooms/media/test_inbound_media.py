"""A customer's file reaches the agent: stored with the message by the webhook (media id, type,
name, hash), fetched by a task off the request, checked, kept through Django's storage API, and
served only to the people who may see the room."""

import hashlib
import time

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from rooms.media.tasks import media_fetch_again, media_fetches_resume, media_fetches_wait
from rooms.models import Message, Room
from tests.factories import AgentFactory, UserFactory
from tests.payloads import message, notification

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573004440001"
JPEG = b"\xff\xd8\xff\xe0" + b"chatbridge test image" * 50
PDF = b"%PDF-1.4\n" + b"extracto bancario " * 100


def media_message(whatsapp, kind: str, content: bytes, mime_type: str, **extra) -> dict:
    media_id = whatsapp.media_add(content, mime_type, extra.get("filename", ""))
    body = {
        "id": media_id,
        "mime_type": mime_type,
        "sha256": extra.pop("sha256", None) or meta_sha256(content),
        **extra,
    }
    return message(WA, kind=kind, body=body)


def meta_sha256(content: bytes) -> str:
    import base64

    return base64.b64encode(hashlib.sha256(content).digest()).decode()


def settled(timeout: float = 10.0) -> Message:
    """The customer's media message once its fetch has ended (stored or failed)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = Message.objects.filter(direction="in").exclude(media_status="").last()
        if stored is not None and stored.media_status != Message.MediaStatus.PENDING:
            return stored
        time.sleep(0.05)
    raise AssertionError("the media fetch did not end")


def test_a_photo_is_fetched_off_the_request_checked_and_kept(post_webhook, whatsapp):
    """The customer's photo of a failed transfer reached the agent as its caption only."""
    post_webhook(notification(messages=[message(WA, "agente")]))  # the agents' room: no turn
    item = media_message(whatsapp, "image", JPEG, "image/jpeg", caption="la transferencia")
    whatsapp.requests.clear()
    whatsapp.delay = 1.0  # WhatsApp's media endpoint is slow today: the webhook does not wait

    started = time.monotonic()
    assert post_webhook(notification(messages=[item])).status_code == 200
    answered = time.monotonic() - started

    assert answered < 1.0  # the fetch (two calls of 1 s each) was not in the request
    stored = Message.objects.get(type="image")
    assert stored.media_status == Message.MediaStatus.PENDING
    assert (stored.type, stored.text) == ("image", "la transferencia")
    assert stored.media_id == item["image"]["id"]
    assert (stored.mime_type, stored.media_sha256) == ("image/jpeg", item["image"]["sha256"])
    kept = settled()
    whatsapp.delay = 0
    assert kept.media_status == Message.MediaStatus.STORED
    assert kept.file.read() == JPEG
    assert kept.media_size == len(JPEG)
    assert item["image"]["id"] not in kept.file.name  # a random name, nothing of the customer's
    assert kept.file.name.endswith(".jpg")
    # Two calls (resolve, download) of 1 s each came after the webhook's answer.
    fetch_calls = [r for r in whatsapp.requests if r["method"] == "GET"]
    assert len(fetch_calls) == 2
    assert all(r["headers"]["authorization"].startswith("Bearer ") for r in fetch_calls)


def test_a_checksum_mismatch_is_retried_then_reported_and_the_message_kept(post_webhook, whatsapp):
    item = media_message(
        whatsapp,
        "document",
        PDF,
        "application/pdf",
        filename="extracto.pdf",
        sha256=meta_sha256(b"another file"),
    )
    post_webhook(notification(messages=[item]))
    failed = settled()
    assert failed.media_status == Message.MediaStatus.FAILED
    assert failed.media_error == "sha256 mismatch"
    assert not failed.file
    assert failed.file_name == "extracto.pdf"  # the message itself is never lost
    assert failed.media_attempts == 3
    resolves = [r for r in whatsapp.requests if r["method"] == "GET" and "_media" not in r["path"]]
    assert len(resolves) == 3  # each attempt resolved the id anew


def test_a_download_cut_short_is_fetched_again(post_webhook, whatsapp):
    whatsapp.corrupt_downloads = 1
    post_webhook(notification(messages=[media_message(whatsapp, "image", JPEG, "image/jpeg")]))
    kept = settled()
    assert kept.media_status == Message.MediaStatus.STORED
    assert kept.file.read() == JPEG
    assert kept.media_attempts == 2


def test_an_expired_url_is_resolved_again(post_webhook, whatsapp):
    whatsapp.media_url_ttl = 0.2
    whatsapp.delay = 0.3  # the URL has expired by the time the download reaches WhatsApp
    post_webhook(notification(messages=[media_message(whatsapp, "image", JPEG, "image/jpeg")]))
    time.sleep(0.5)
    whatsapp.media_url_ttl = 300
    kept = settled()
    whatsapp.delay = 0
    assert kept.media_status == Message.MediaStatus.STORED
    assert kept.media_attempts >= 2
    downloads = [r["path"] for r in whatsapp.requests if r["path"].startswith("/_media/")]
    assert len(set(downloads)) == len(downloads) >= 2  # a fresh URL for each attempt


def test_an_oversize_file_is_refused_at_once(post_webhook, whatsapp, settings):
    settings.MEDIA_MAX_BYTES = 1024
    post_webhook(
        notification(messages=[media_message(whatsapp, "document", PDF, "application/pdf")])
    )
    failed = settled()
    assert failed.media_status == Message.MediaStatus.FAILED
    assert failed.media_error.startswith("too large for a document")
    assert failed.media_attempts == 1  # no retry can make it smaller
    assert not [r for r in whatsapp.requests if r["path"].startswith("/_media/")]


def test_a_type_outside_the_allow_list_is_not_kept(post_webhook, whatsapp):
    exe = b"MZ\x90\x00" * 100
    item = media_message(whatsapp, "document", exe, "application/x-msdownload", filename="a.exe")
    post_webhook(notification(messages=[item]))
    failed = settled()
    assert failed.media_status == Message.MediaStatus.FAILED
    assert failed.media_error == "type not accepted: application/x-msdownload"
    assert not failed.file


def test_an_unknown_media_id_fails_with_meta_code_without_retrying(post_webhook, whatsapp):
    item = message(WA, kind="image", body={"id": "999", "mime_type": "image/jpeg", "sha256": "x"})
    post_webhook(notification(messages=[item]))
    failed = settled()
    assert (failed.media_status, failed.media_error) == ("failed", "100")
    assert failed.media_attempts == 1


def test_a_fetch_whose_process_died_is_taken_up_by_the_periodic_job(
    post_webhook, whatsapp, settings
):
    post_webhook(notification(messages=[message(WA, "agente")]))  # no turn: the fetch's calls only
    item = media_message(whatsapp, "image", JPEG, "image/jpeg")
    whatsapp.fail_next(503, count=3)  # every attempt of the first fetch fails...
    post_webhook(notification(messages=[item]))
    assert settled().media_status == Message.MediaStatus.FAILED
    # ...then a fetch that was claimed and whose process died: pending, silent for long.
    Message.objects.filter(type="image").update(
        media_status="pending", updated_at=timezone.now() - timezone.timedelta(hours=1)
    )
    assert media_fetches_resume() == 1  # started again as a task, not run by the job itself
    media_fetches_wait()
    assert Message.objects.get(type="image").media_status == Message.MediaStatus.STORED
    assert media_fetches_resume() == 0


def test_a_file_whose_fetch_keeps_dying_is_given_up(post_webhook, whatsapp):
    """A file that kills its fetcher (out of memory, say) was taken up every five minutes, for
    ever."""
    post_webhook(notification(messages=[message(WA, "agente")]))
    post_webhook(notification(messages=[media_message(whatsapp, "image", JPEG, "image/jpeg")]))
    settled()
    Message.objects.filter(type="image").update(
        media_status="pending",
        media_attempts=9,
        updated_at=timezone.now() - timezone.timedelta(hours=1),
    )
    whatsapp.requests.clear()
    assert media_fetches_resume() == 0
    given_up = Message.objects.get(type="image")
    assert (given_up.media_status, given_up.media_error) == ("failed", "gave up after 9 attempts")
    assert whatsapp.requests == []


def test_a_fetch_taken_over_cannot_overwrite_the_one_that_took_it(post_webhook, whatsapp):
    """Two fetchers of one file (the first looked dead, and was not): only the claim's holder
    writes; the other's file is not kept."""
    from django.core.files.storage import default_storage

    from rooms.media.services import media_fetch_run

    post_webhook(notification(messages=[message(WA, "agente")]))
    whatsapp.delay = 0.5
    post_webhook(notification(messages=[media_message(whatsapp, "image", JPEG, "image/jpeg")]))
    stored = Message.objects.get(type="image")
    # While the first fetch waits on WhatsApp, another fetcher claims the file (as the periodic
    # job does when a fetch looks dead): the claim's token moves on.
    time.sleep(0.2)  # the first fetch has claimed it and is waiting on WhatsApp
    assert Message.objects.filter(pk=stored.pk, media_attempts=1).update(media_attempts=5) == 1
    media_fetches_wait()
    whatsapp.delay = 0
    stored.refresh_from_db()
    assert (stored.media_status, stored.file.name) == ("pending", "")
    assert default_storage.listdir(f"rooms/{stored.room_id}")[1] == []  # its file not kept
    Message.objects.filter(pk=stored.pk).update(
        updated_at=timezone.now() - timezone.timedelta(hours=1)
    )
    assert media_fetch_run(message_id=stored.pk) == "stored"


def test_an_operator_fetches_a_failed_file_again(post_webhook, whatsapp):
    post_webhook(notification(messages=[message(WA, "agente")]))  # no turn: the fetch's calls only
    whatsapp.fail_next(400, {"error": {"code": 190, "message": "token expired"}}, count=3)
    post_webhook(notification(messages=[media_message(whatsapp, "image", JPEG, "image/jpeg")]))
    failed = settled()
    assert failed.media_error == "190"
    assert media_fetch_again(message_ids=[failed.pk]) == 1
    assert settled().media_status == Message.MediaStatus.STORED


def test_a_file_in_an_agents_room_reaches_the_console_when_kept(post_webhook, whatsapp):
    post_webhook(notification(messages=[message(WA, "agente")]))
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    post_webhook(notification(messages=[media_message(whatsapp, "image", JPEG, "image/jpeg")]))
    kept = settled()
    new, media = (
        room.events.filter(kind="message.new").latest("seq"),
        room.events.get(kind="message.media"),
    )
    assert new.data["media"]["status"] == "pending"
    assert new.data["media"]["url"] is None
    assert media.seq > new.seq
    assert media.data == {
        "id": kept.pk,
        "media": {
            "status": "stored",
            "mime_type": "image/jpeg",
            "file_name": "",
            "size": len(JPEG),
            "error": "",
            "url": f"/files/{kept.pk}",
        },
    }


def _assigned_room_with(whatsapp, post_webhook, item: dict) -> tuple[Message, object]:
    post_webhook(notification(messages=[message(WA, "agente")]))
    agent = AgentFactory()
    Room.objects.update(status=Room.Status.ASSIGNED, agent=agent, assigned_at=timezone.now())
    post_webhook(notification(messages=[item]))
    return settled(), agent


def test_the_assigned_agent_gets_an_image_inline_with_nosniff(client, post_webhook, whatsapp):
    kept, agent = _assigned_room_with(
        whatsapp, post_webhook, media_message(whatsapp, "image", JPEG, "image/jpeg")
    )
    client.force_login(agent)
    response = client.get(f"/files/{kept.pk}")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == JPEG
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")
    assert "sandbox" in response["Content-Security-Policy"]


def test_a_document_is_an_attachment_with_its_file_name(client, post_webhook, whatsapp):
    item = media_message(
        whatsapp, "document", PDF, "application/pdf", filename="extracto marzo.pdf"
    )
    kept, agent = _assigned_room_with(whatsapp, post_webhook, item)
    client.force_login(agent)
    response = client.get(f"/files/{kept.pk}")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("attachment")
    assert "extracto marzo.pdf" in response["Content-Disposition"]


def test_nobody_else_gets_the_file(client, post_webhook, whatsapp):
    kept, _agent = _assigned_room_with(
        whatsapp, post_webhook, media_message(whatsapp, "image", JPEG, "image/jpeg")
    )
    url = f"/files/{kept.pk}"
    assert client.get(url).status_code == 302  # to the login page
    client.force_login(AgentFactory(username="other-agent"))
    assert client.get(url).status_code == 404  # not theirs: as if it did not exist
    client.force_login(UserFactory(username="staff-without-permission", is_staff=True))
    assert client.get(url).status_code == 404
    assert client.get(f"/files/{kept.pk + 1000}").status_code == 404
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert client.get(url).status_code == 200
    supervisor = UserFactory(username="staff-with-view-message", is_staff=True)
    supervisor.user_permissions.add(Permission.objects.get(codename="view_message"))
    client.force_login(supervisor)
    assert client.get(url).status_code == 200


def test_the_agent_loses_the_file_with_the_room(client, post_webhook, whatsapp):
    """Once the room is another agent's, its file is not the first one's any more; once it is
    closed, its last agent reads it again with the conversation (read-only, issue 12), and an
    agent who never had it still does not."""
    kept, agent = _assigned_room_with(
        whatsapp, post_webhook, media_message(whatsapp, "image", JPEG, "image/jpeg")
    )
    client.force_login(agent)
    url = f"/files/{kept.pk}"
    assert client.get(url).status_code == 200
    other = AgentFactory(username="takes-it-over")
    Room.objects.update(agent=other)
    assert client.get(url).status_code == 404
    Room.objects.update(status=Room.Status.CLOSED, closed_at=timezone.now())
    assert client.get(url).status_code == 404  # closed, and never finished by this agent
    client.force_login(other)
    assert client.get(url).status_code == 200  # its last agent, reading it closed
    client.force_login(AgentFactory(username="never-had-it"))
    assert client.get(url).status_code == 404


def test_no_storage_url_is_served(client, post_webhook, whatsapp):
    kept, agent = _assigned_room_with(
        whatsapp, post_webhook, media_message(whatsapp, "image", JPEG, "image/jpeg")
    )
    client.force_login(agent)
    assert client.get(f"/media/{kept.file.name}").status_code == 404
    assert client.get(f"/{kept.file.name}").status_code == 404
