"""A Twilio customer's file: fetched from its MediaUrl with the account's basic auth, through
Twilio's redirect to its storage, never past max_bytes, and never with our credentials
anywhere but the configured API."""

import base64

import pytest

from chatbridge.fakes.twilio import inbound_form
from chatbridge.http import MediaTooLarge
from rooms.providers import provider_for
from rooms.providers.base import FetchedMedia
from rooms.providers.twilio import TwilioError
from tests.payloads import twilio_post
from tests.rooms.media.test_inbound_media import settled

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573001234567"
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8


def test_the_file_of_a_stored_message_is_fetched_with_basic_auth(client, twilio, settings):
    url = twilio.media_add(JPEG, "image/jpeg")
    form = inbound_form(wa_id=WA, text="mi factura", MediaUrl0=url, MediaContentType0="image/jpeg")
    assert twilio_post(client, form).status_code == 200

    # The same task as Meta's files fetches it, through the Twilio provider, and keeps it.
    stored = settled()
    assert (stored.type, stored.media_id, stored.media_status) == ("image", url, "stored")
    assert stored.file.read() == JPEG
    media, storage = [r for r in twilio.requests if r["method"] == "GET"]
    credentials = f"{settings.TWILIO_ACCOUNT_SID}:{settings.TWILIO_AUTH_TOKEN}".encode()
    assert media["headers"]["authorization"] == f"Basic {base64.b64encode(credentials).decode()}"
    assert storage["path"].startswith("/storage/")  # Twilio's redirect, followed
    fetched = provider_for("twilio").media_fetch(url, max_bytes=len(JPEG))
    assert fetched == FetchedMedia(content=JPEG, mime_type="image/jpeg")


def test_a_file_over_max_bytes_is_refused_while_streaming(twilio):
    url = twilio.media_add(JPEG, "image/jpeg")
    with pytest.raises(MediaTooLarge):
        provider_for("twilio").media_fetch(url, max_bytes=len(JPEG) - 1)


def test_wrong_credentials_fail_with_twilios_code(twilio, settings):
    url = twilio.media_add(JPEG, "image/jpeg")
    settings.TWILIO_AUTH_TOKEN = "not-the-token"
    with pytest.raises(TwilioError) as refused:
        provider_for("twilio").media_fetch(url, max_bytes=10_000)
    assert (refused.value.code, refused.value.status) == (20003, 401)


def test_a_file_twilio_no_longer_has_fails_with_its_code(twilio):
    url = twilio.media_add(JPEG, "image/jpeg").rpartition("/")[0] + "/MEgone"
    with pytest.raises(TwilioError) as refused:
        provider_for("twilio").media_fetch(url, max_bytes=10_000)
    assert refused.value.code == 20404


def test_our_credentials_go_to_the_configured_api_only(twilio):
    with pytest.raises(TwilioError, match="not a media URL of the configured Twilio API"):
        provider_for("twilio").media_fetch("https://files.example.com/a.jpg", max_bytes=10_000)
    assert twilio.requests == []
