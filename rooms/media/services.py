"""Files customers send: fetched from the provider by a task, checked, kept through Django's
storage API, and shown to the agents once they are.

The webhook only stores what the provider declared (media id, type, name, SHA-256) with the
message, `media_status` pending; nothing is downloaded in the request. A task then takes the
fetch (`media_fetch_run`): it resolves the media id again on every attempt (WhatsApp's URL expires
within minutes), checks size, type and hash, and saves the file under a random name. Failures are
retried with backoff, then the message says "could not fetch (reason)"; the message itself is
never lost. A fetch whose process died is taken up again by the periodic job
(`media_fetches_resume`): a pending row untouched for MEDIA_FETCH_STALE_SECONDS.
"""

import datetime as dt
import logging
import mimetypes
import time
import uuid

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from chatbridge.http import MediaTooLarge, VendorError
from rooms.events import media_data, room_event_record
from rooms.lines import line_sender
from rooms.models import Message, Room
from rooms.providers import provider_for
from rooms.whatsapp.client import (
    MEDIA_KINDS,
    MEDIA_LIMITS,
    FetchedMedia,
    WhatsAppError,
    mime_base,
    sha256_matches,
)

logger = logging.getLogger("chatbridge.media")

# Codes no retry can mend: Meta's invalid or unknown media id and bad parameters, Twilio's
# "not found".
_FINAL_CODES = {100, 131008, 131009, 20404}


class MediaRefused(Exception):
    """The file will not be kept however often it is fetched: too large, or a type refused."""


def accepted_types() -> set[str]:
    """The MIME types chatbridge keeps and serves: WhatsApp's table and MEDIA_EXTRA_TYPES."""
    return set(MEDIA_KINDS) | {mime_base(extra) for extra in settings.MEDIA_EXTRA_TYPES}


def media_fetches_abandon(*, message_ids: list[int]) -> None:
    """Files whose fetch was taken up again and again (each time its process died): failed,
    so a file that kills its fetcher is not fetched for ever."""
    for message in Message.objects.filter(pk__in=message_ids):
        _media_failed(message, f"gave up after {message.media_attempts} attempts", token=None)


def media_limit(kind: str) -> int:
    return min(MEDIA_LIMITS.get(kind, MEDIA_LIMITS["document"]), settings.MEDIA_MAX_BYTES)


def storage_name(*, room_id: int, mime_type: str) -> str:
    """A random name, never the customer's file name (that is kept only to show and to offer
    as the download's name): nothing in it can be guessed or can climb out of the folder."""
    extension = mimetypes.guess_extension(mime_base(mime_type)) or ".bin"
    return f"rooms/{room_id}/{uuid.uuid4().hex}{extension}"


def media_fetch_run(*, message_id: int) -> str:
    """Fetch and keep one message's file; the outcome (stored, failed, or skipped when someone
    else holds it or it is settled)."""
    claimed = _media_claim(message_id)
    if claimed is None:
        return "skipped"
    message, token = claimed
    attempts = settings.MEDIA_FETCH_ATTEMPTS
    for attempt in range(1, attempts + 1):
        try:
            fetched = _fetch(message)
            _check(message, fetched)
        except MediaRefused as error:
            return _media_failed(message, str(error), token=token)
        except (VendorError, ChecksumMismatch) as error:
            reason = _reason(error)
            final = isinstance(error, VendorError) and error.code in _FINAL_CODES
            logger.info("media of message %s: attempt %d failed: %s", message_id, attempt, reason)
            if final or attempt == attempts:
                return _media_failed(message, reason, token=token)
            time.sleep(settings.MEDIA_FETCH_BACKOFF * 2 ** (attempt - 1))
            renewed = _media_touch(message_id, token=token)
            if renewed is None:
                return "skipped"  # taken over meanwhile (this fetch looked dead): theirs now
            token = renewed
            continue
        return _media_stored(message, fetched, token=token)
    raise AssertionError("unreachable")


class ChecksumMismatch(Exception):
    """The bytes fetched are not the file WhatsApp declared (cut off, or altered on the way)."""


def _media_claim(message_id: int) -> tuple[Message, int] | None:
    """Take the fetch: a pending file nobody has tried, or one whose fetcher went silent. With
    the claim's token (the attempts counted so far): every later write of this fetch is made
    only while the row still carries it, so a fetcher taken over cannot overwrite the other."""
    stale = timezone.now() - dt.timedelta(seconds=settings.MEDIA_FETCH_STALE_SECONDS)
    with transaction.atomic():
        message = (
            Message.objects.select_for_update(of=("self",))
            .select_related("room__customer")
            .filter(pk=message_id, media_status=Message.MediaStatus.PENDING)
            .filter(Q(media_attempts=0) | Q(updated_at__lt=stale))
            .first()
        )
        if message is None:
            return None
        message.media_attempts += 1
        Message.objects.filter(pk=message_id).update(
            media_attempts=message.media_attempts, updated_at=timezone.now()
        )
    return message, message.media_attempts


def _media_touch(message_id: int, *, token: int) -> int | None:
    """Each attempt renews the claim, so the periodic job does not take a fetch still running;
    the new token, or None if the fetch was taken over."""
    renewed = Message.objects.filter(
        pk=message_id, media_status=Message.MediaStatus.PENDING, media_attempts=token
    ).update(media_attempts=token + 1, updated_at=timezone.now())
    return token + 1 if renewed else None


def _fetch(message: Message) -> FetchedMedia:
    kind = message.type if message.type in MEDIA_LIMITS else "document"
    limit = media_limit(kind)
    try:
        provider = provider_for(message.room.customer.provider)
        sender = line_sender(message.room.line)
        return provider.media_fetch(message.media_id, max_bytes=limit, sender=sender)
    except MediaTooLarge as error:
        raise MediaRefused(f"too large for a {kind} (over {limit // 1024} KB)") from error


def _check(message: Message, fetched: FetchedMedia) -> None:
    mime_type = mime_base(fetched.mime_type or message.mime_type)
    if mime_type not in accepted_types():
        raise MediaRefused(f"type not accepted: {mime_type or 'unknown'}")
    for declared in {message.media_sha256, fetched.sha256} - {""}:
        if not sha256_matches(fetched.content, declared):
            raise ChecksumMismatch("sha256 mismatch")


def _reason(error: Exception) -> str:
    if isinstance(error, WhatsAppError) and error.code is not None:
        return str(error.code)
    if isinstance(error, VendorError) and error.status:
        return f"HTTP {error.status}"
    return str(error)[:200] or type(error).__name__


def _media_stored(message: Message, fetched: FetchedMedia, *, token: int) -> str:
    mime_type = fetched.mime_type or message.mime_type
    name = default_storage.save(
        storage_name(room_id=message.room_id, mime_type=mime_type), ContentFile(fetched.content)
    )
    with transaction.atomic():
        updated = Message.objects.filter(
            pk=message.pk, media_status=Message.MediaStatus.PENDING, media_attempts=token
        ).update(
            file=name,
            mime_type=mime_type[:255],
            media_size=len(fetched.content),
            media_status=Message.MediaStatus.STORED,
            media_error="",
            updated_at=timezone.now(),
        )
        if updated:
            _media_event(message.pk)
    if not updated:
        default_storage.delete(name)  # taken over or settled meanwhile: keep nothing
        return "skipped"
    logger.info("media of message %s stored (%d bytes)", message.pk, len(fetched.content))
    return "stored"


def _media_failed(message: Message, reason: str, *, token: int | None) -> str:
    """The file will not be kept: the message says why. `token`: only if this fetch still holds
    the claim (None: whoever holds it, the periodic job giving up)."""
    with transaction.atomic():
        pending = Message.objects.filter(pk=message.pk, media_status=Message.MediaStatus.PENDING)
        if token is not None:
            pending = pending.filter(media_attempts=token)
        updated = pending.update(
            media_status=Message.MediaStatus.FAILED,
            media_error=reason[:300],
            updated_at=timezone.now(),
        )
        if updated:
            _media_event(message.pk)
    logger.warning("media of message %s not fetched: %s", message.pk, reason)
    return "failed"


def _media_event(message_id: int) -> None:
    """The agents' room: its consoles replace the file's placeholder with the file (or the
    reason it is missing)."""
    message = Message.objects.select_related("room").get(pk=message_id)
    if message.room.status in Room.WITH_AGENTS:
        room_event_record(
            room_id=message.room_id,
            kind="message.media",
            data={"id": message.pk, "media": media_data(message)},
        )
