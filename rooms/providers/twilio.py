"""Twilio's WhatsApp: its signed form webhooks, the Messages API, and media by URL.

Twilio without Content API templates sends text and media by URL only: Meta-shaped buttons and
lists go as numbered text (the customer answers with the number, rooms/bot/turns.py maps it
back), and a body it cannot express (a template, media by WhatsApp id) is refused with a
readable VendorError, never dropped. It has no read mark and no typing indicator.
"""

import base64
import datetime as dt
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Sequence
from functools import cache
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse

from chatbridge.http import (
    VendorError,
    get_streamed,
    post_form,
    read_at_most,
    vendor_errors,
    vendor_session,
)
from rooms.providers.base import FetchedMedia, Sender
from rooms.whatsapp.webhook import (
    InboundMessage,
    MediaRef,
    Notification,
    SkippedItem,
    StatusUpdate,
    WebhookError,
    storable,
)

logger = logging.getLogger("chatbridge.twilio")

# Outside the 24-hour customer service window: Meta's 131047, as Twilio reports it.
WINDOW_CLOSED = 63016
BODY_MAX = 1600  # Twilio refuses longer bodies (21617)
# Twilio's "too many requests"; with 429 and 5xx, the same request can succeed later.
RETRYABLE_CODES = {20429}

_ERROR_DETAILS = {
    WINDOW_CLOSED: (
        "More than 24 hours have passed since the customer last wrote: only an approved "
        "template can reach them now"
    ),
    63003: "The customer's number is not on WhatsApp",
}


class TwilioError(VendorError):
    def __init__(self, message: str, *, code: int | None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code
        self.retryable = code in RETRYABLE_CODES or status == 429 or (status or 0) >= 500


class _UnusableError(Exception):
    """A form chatbridge cannot use; the reason never quotes its content."""


# --- the signature -------------------------------------------------------------------------------


def twilio_signature(auth_token: str, url: str, params: dict[str, list[str]]) -> str:
    """Base64(HMAC-SHA1(auth token, the URL, then each parameter's name and value)), names and
    values sorted and a repeated pair counted once, as Twilio's own validator signs."""
    signed = url + "".join(
        name + value for name in sorted(params) for value in sorted(set(params[name]))
    )
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def url_variants(url: str) -> tuple[str, str]:
    """The URL with its port and without it. Twilio signs either (its validator accepts both):
    `https://host/x` may have been signed as `https://host:443/x`, and the other way round."""
    parts = urlsplit(url)
    if parts.port is None:
        port = 443 if parts.scheme == "https" else 80
        return parts._replace(netloc=f"{parts.netloc}:{port}").geturl(), url
    return url, parts._replace(netloc=parts.netloc.rpartition(":")[0]).geturl()


def signature_matches(
    *, auth_token: str, url: str, params: dict[str, list[str]], given: str
) -> bool:
    # As bytes: a header may carry any byte, and compare_digest refuses non-ASCII str.
    given_bytes = given.encode("utf-8", "replace")
    return any(
        hmac.compare_digest(twilio_signature(auth_token, candidate, params).encode(), given_bytes)
        for candidate in url_variants(url)
    )


# --- what Twilio POSTs ---------------------------------------------------------------------------

# Twilio's message statuses as ours: anything Twilio has accepted counts as sent.
_STATUSES = {
    "accepted": "sent",
    "queued": "sent",
    "sending": "sent",
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "failed": "failed",
    "undelivered": "failed",
}
_INBOUND_STATUSES = {"", "received", "receiving"}
_STATUS_NAME = re.compile(r"[a-z_]{1,40}\Z")
_DIGITS = re.compile(r"[0-9]{1,32}\Z")
_ERROR_CODE = re.compile(r"[0-9]{1,9}\Z")


def notification_from_form(form: dict[str, str], *, reference: str = "") -> Notification:
    """One inbound message or one status callback; `reference` is the callback URL's `ref`."""
    notification = Notification()
    status = form.get("MessageStatus", "")
    try:
        if status in _INBOUND_STATUSES:
            notification.messages.append(_inbound_message(form))
        else:
            notification.statuses.append(_status_update(form, status, reference))
    except _UnusableError as error:
        sid = form.get("MessageSid", "")
        kind = "message" if status in _INBOUND_STATUSES else "status"
        notification.skipped.append(SkippedItem(kind, str(error), form, sid[:255]))
    return notification


def _inbound_message(form: dict[str, str]) -> InboundMessage:
    wa_id = _sender(form)
    message_type, text, media = _content(form)
    return InboundMessage(
        wa_message_id=_sid(form),
        uid=wa_id,
        wa_id=wa_id,
        user_id="",
        name=form.get("ProfileName", "")[:255],
        type=message_type,
        text=text,
        # Twilio sends no time: it posts as the message arrives (a retry within seconds).
        timestamp=dt.datetime.now(dt.UTC),
        payload=form,
        media=media,
        provider=TwilioProvider.name,
    )


def _sid(form: dict[str, str]) -> str:
    sid = form.get("MessageSid", "")
    if not sid or len(sid) > 255:
        raise _UnusableError("MessageSid must be a non-empty string")
    return sid


def _sender(form: dict[str, str]) -> str:
    """The customer's WhatsApp id: WaId, or the digits of `From=whatsapp:+573001234567`."""
    wa_id = form.get("WaId") or form.get("From", "").removeprefix("whatsapp:+")
    if not _DIGITS.match(wa_id):
        raise _UnusableError("the sender is not a WhatsApp number")
    return wa_id


def _content(form: dict[str, str]) -> tuple[str, str, MediaRef | None]:
    """(our message type, the text it carries, its file) for one of Twilio's messages."""
    body = form.get("Body", "")
    button = form.get("ButtonText") or form.get("ButtonPayload")
    if button:
        return "interactive", button, None
    if form.get("Latitude") and form.get("Longitude"):
        parts = [form.get("Label"), form.get("Address")]
        return "location", " — ".join(part for part in parts if part), None
    url, mime_type = form.get("MediaUrl0", ""), form.get("MediaContentType0", "")
    if url:
        # Twilio names no file and gives no checksum.
        media = MediaRef(ref=url, mime_type=mime_type, filename="", sha256="")
        return _media_type(mime_type), body, media
    if body:
        return "text", body, None
    return "unsupported", "", None


def _media_type(mime_type: str) -> str:
    if mime_type == "image/webp":
        return "sticker"  # WhatsApp's stickers are WebP; its photos JPEG or PNG
    kind = mime_type.partition("/")[0]
    return kind if kind in ("image", "audio", "video") else "document"


def _status_update(form: dict[str, str], status: str, reference: str) -> StatusUpdate:
    if status not in _STATUSES:
        raise _UnusableError(
            f"unknown status {status!r}" if _STATUS_NAME.match(status) else "unknown status"
        )
    error_code, error_detail = None, ""
    if _STATUSES[status] == "failed":
        code = form.get("ErrorCode", "")
        error_code = int(code) if _ERROR_CODE.match(code) else None
        error_detail = form.get("ErrorMessage") or _ERROR_DETAILS.get(
            error_code or 0, f"Twilio error {error_code or 'without a code'}"
        )
    return StatusUpdate(
        wa_message_id=_sid(form),
        status=_STATUSES[status],
        timestamp=dt.datetime.now(dt.UTC),
        error_code=error_code,
        error_detail=error_detail[:1000],
        reference=reference if len(reference) <= 512 else "",
    )


# --- what chatbridge sends -----------------------------------------------------------------------


def message_form(body: dict[str, Any]) -> dict[str, str]:
    """The Messages API's fields for a Meta-shaped body; TwilioError for one Twilio cannot send."""
    kind = body.get("type", "text")
    content = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(content, dict):
        raise TwilioError(f"a {kind!r} message without its content", code=None)
    if kind == "text":
        form = {"Body": str(content.get("body", ""))}
    elif kind == "interactive" and content.get("type") in ("button", "list"):
        form = {"Body": _numbered(content)}
    elif kind in ("image", "video", "audio", "document") and content.get("link"):
        form = {"MediaUrl": str(content["link"])}
        if content.get("caption"):
            form["Body"] = str(content["caption"])
    else:
        raise TwilioError(_unsendable(kind, content), code=None)
    if len(form.get("Body", "")) > BODY_MAX:
        raise TwilioError(f"longer than Twilio's {BODY_MAX} characters", code=None)
    return form


def _numbered(interactive: dict[str, Any]) -> str:
    """Buttons or a list as the prompt and its options numbered, in the order of their ids."""
    action = interactive.get("action") or {}
    titles = [(button.get("reply") or {}).get("title") for button in action.get("buttons") or []]
    titles += [
        row.get("title")
        for section in action.get("sections") or []
        for row in section.get("rows") or []
    ]
    prompt = (interactive.get("body") or {}).get("text", "")
    return "\n".join([prompt, *(f"{number}. {title}" for number, title in enumerate(titles, 1))])


def _unsendable(kind: str, content: dict[str, Any]) -> str:
    if kind == "template":
        return "templates go through Twilio's Content API, which chatbridge does not use"
    if kind in ("image", "video", "audio", "document", "sticker"):
        return f"Twilio sends media by URL only; this {kind} has none"
    if kind == "interactive":
        return f"Twilio cannot send an interactive {content.get('type')!r} message"
    return f"Twilio cannot send a {kind!r} message"


class TwilioClient:
    """The Messages API and media downloads, with the account's basic auth."""

    def __init__(
        self,
        *,
        api_url: str,
        account_sid: str,
        auth_token: str,
        sender: str,
        status_callback: str,
        timeout: float,
        attempts: int,
        backoff: float,
    ) -> None:
        self.url = f"{api_url}/2010-04-01/Accounts/{account_sid}/Messages.json"
        self.origin = _origin(api_url)
        self.auth = (account_sid, auth_token)
        self.sender = sender
        self.status_callback = status_callback
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.session = vendor_session()

    def send(self, *, to: str, body: dict[str, Any], reference: str) -> str:
        """Send one message to the WhatsApp id `to`; returns Twilio's message sid. `reference`
        rides in the StatusCallback URL: Twilio echoes no data of ours, but calls that URL back
        with every status (signed over it, query included)."""
        if not to:
            raise TwilioError("the customer has no WhatsApp number", code=None)
        form = {"From": self.sender, "To": f"whatsapp:+{to}", **message_form(body)}
        # ":" needs no escaping in a query: Twilio signs the URL exactly as we wrote it.
        query = f"?{urlencode({'ref': reference}, safe=':')}" if reference else ""
        form["StatusCallback"] = self.status_callback + query
        for attempt in range(1, self.attempts + 1):
            try:
                return self._post(form)
            except VendorError as error:
                if not error.retryable or attempt == self.attempts:
                    raise
                delay = self.backoff * 2 ** (attempt - 1)
                logger.info("twilio send retry %d in %.1fs: %s", attempt, delay, error)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _post(self, form: dict[str, str]) -> str:
        response = post_form(
            self.session, self.url, data=form, auth=self.auth, timeout=self.timeout
        )
        data = _json_object(response)
        if response.status_code >= 400:
            code = data.get("code") if isinstance(data.get("code"), int) else None
            message = str(data.get("message") or f"HTTP {response.status_code}")
            raise TwilioError(message[:1000], code=code, status=response.status_code)
        sid = data.get("sid")
        if not isinstance(sid, str) or not sid:
            raise TwilioError("response without a message sid", code=None)
        return sid

    def media_fetch(self, url: str, *, max_bytes: int) -> FetchedMedia:
        """Download a MediaUrl (Twilio redirects to its storage); TwilioError with Twilio's code,
        or the HTTP status, on failure, MediaTooLarge past `max_bytes`. The credentials go to
        the configured API's address only."""
        if _origin(url) != self.origin:
            raise TwilioError("not a media URL of the configured Twilio API", code=None)
        response = get_streamed(self.session, url, auth=self.auth, timeout=self.timeout)
        with response, vendor_errors(self.timeout):
            if response.status_code >= 400:
                code = _json_object(response).get("code")
                status = response.status_code
                code = code if isinstance(code, int) else status
                raise TwilioError(f"media answered HTTP {status}", code=code, status=status)
            content = read_at_most(response, max_bytes)
        mime_type = response.headers.get("Content-Type", "").partition(";")[0].strip()
        return FetchedMedia(content=content, mime_type=mime_type or "application/octet-stream")


def _json_object(response: Any) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


@cache
def twilio_client() -> TwilioClient:
    return TwilioClient(
        api_url=settings.TWILIO_API_URL,
        account_sid=settings.TWILIO_ACCOUNT_SID,
        auth_token=settings.TWILIO_AUTH_TOKEN,
        sender=settings.TWILIO_WHATSAPP_FROM,
        status_callback=settings.TWILIO_WEBHOOK_BASE_URL + reverse("twilio-status"),
        # The send settings are WhatsApp's: the send lease covers them (chatbridge/settings.py).
        timeout=settings.WHATSAPP_TIMEOUT,
        attempts=settings.WHATSAPP_SEND_ATTEMPTS,
        backoff=settings.WHATSAPP_RETRY_BACKOFF,
    )


# --- the provider --------------------------------------------------------------------------------


class TwilioProvider:
    name = "twilio"

    def verify(self, request: HttpRequest, *, app_secrets: Sequence[str] = ()) -> str:
        """Against the configured public URL, never the request's Host: behind the proxy that
        is an internal name Twilio never signed."""
        if not settings.TWILIO_AUTH_TOKEN:
            raise WebhookError(404, "Twilio is not configured")
        given = request.headers.get("X-Twilio-Signature", "")
        if not given:
            raise WebhookError(403, "missing X-Twilio-Signature")
        if not signature_matches(
            auth_token=settings.TWILIO_AUTH_TOKEN,
            url=settings.TWILIO_WEBHOOK_BASE_URL + request.get_full_path(),
            params=dict(request.POST.lists()),
            given=given,
        ):
            raise WebhookError(403, "signature does not match")
        return settings.TWILIO_AUTH_TOKEN

    def parse(self, request: HttpRequest) -> Notification:
        if request.content_type != "application/x-www-form-urlencoded":
            raise WebhookError(400, "not a form")
        form = storable(request.POST.dict())
        return notification_from_form(form, reference=request.GET.get("ref", ""))

    # One Twilio sender (TWILIO_WHATSAPP_FROM): `sender` names Meta numbers and is not used.
    def send(
        self,
        *,
        to: str,
        recipient_user_id: str,
        body: dict[str, Any],
        reference: str,
        sender: Sender | None = None,
    ) -> str:
        return twilio_client().send(to=to, body=body, reference=reference)

    def mark_read(
        self, provider_message_id: str, *, typing: bool, sender: Sender | None = None
    ) -> bool:
        return False  # Twilio's WhatsApp has no read mark and no typing indicator

    def media_fetch(
        self, ref: str, *, max_bytes: int, sender: Sender | None = None
    ) -> FetchedMedia:
        return twilio_client().media_fetch(ref, max_bytes=max_bytes)
