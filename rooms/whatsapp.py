"""WhatsApp Cloud API: the inbound webhook as a request object, and the client that sends.

Neither knows the ORM or the cache.
"""

import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from django.conf import settings

from chatbridge.http import VendorError, post_json, vendor_session

logger = logging.getLogger("chatbridge.whatsapp")


# --- inbound ------------------------------------------------------------------------------------


class WebhookError(Exception):
    """A notification chatbridge refuses; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class InboundMessage:
    wa_message_id: str
    uid: str  # wa_id, or the business-scoped user id when there is no phone number
    wa_id: str
    user_id: str
    name: str
    type: str  # one of rooms.models.Message.Type
    text: str
    timestamp: dt.datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class StatusUpdate:
    wa_message_id: str
    status: str  # sent, delivered, read, failed (played counts as read)
    timestamp: dt.datetime
    error_code: int | None = None
    error_detail: str = ""


@dataclass(frozen=True)
class Notification:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)


_MEDIA_TYPES = {"image", "audio", "video", "document", "sticker"}
_STATUSES = {"sent", "delivered", "read", "failed", "played"}


class InboundWebhook:
    """A POST from Meta: `validate()` checks the signature, `parse()` reads every item.

    Parsing is all or nothing: a payload with one malformed item is refused whole, so nothing of
    it is stored, and Meta's redelivery (or its absence) decides the rest.
    """

    def __init__(self, *, body: bytes, signature: str | None, app_secret: str) -> None:
        self.body = body
        self.signature = signature or ""
        self.app_secret = app_secret

    def validate(self) -> None:
        if not self.signature.startswith("sha256="):
            raise WebhookError(401, "missing X-Hub-Signature-256")
        # Hash the raw bytes: Meta signs its own escaped JSON, not any re-serialisation of it.
        expected = hmac.new(self.app_secret.encode(), self.body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, self.signature.removeprefix("sha256=").lower()):
            raise WebhookError(401, "signature does not match")

    def parse(self) -> Notification:
        try:
            data = storable(json.loads(self.body, parse_constant=_not_json))
        except (ValueError, UnicodeDecodeError, RecursionError) as error:
            raise WebhookError(400, f"invalid JSON: {type(error).__name__}") from error
        if not isinstance(data, dict) or data.get("object") != "whatsapp_business_account":
            raise WebhookError(400, "not a WhatsApp Business Account notification")
        entries = data.get("entry")
        if not isinstance(entries, list):
            raise WebhookError(400, "entry must be a list")
        notification = Notification()
        for entry in entries:
            for change in _list(_dict(entry, "entry").get("changes"), "changes"):
                change = _dict(change, "change")
                if change.get("field") != "messages":
                    continue  # account and template updates: not ours to handle
                value = _dict(change.get("value"), "value")
                names = _contact_names(value)
                for message in _list(value.get("messages", []), "messages"):
                    notification.messages.append(_inbound_message(_dict(message, "message"), names))
                for status in _list(value.get("statuses", []), "statuses"):
                    notification.statuses.append(_status_update(_dict(status, "status")))
        return notification


def _not_json(constant: str) -> None:
    # Python reads NaN and Infinity; JSON (and PostgreSQL's jsonb) has no such thing.
    raise ValueError(f"{constant} is not JSON")


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(value: Any) -> Any:
    """JSON as PostgreSQL can keep it: text and jsonb refuse NUL and lone surrogates (valid in
    JSON escapes), so those become U+FFFD; everything else is kept exactly."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, list):
        return [storable(item) for item in value]
    if isinstance(value, dict):
        return {storable(key): storable(item) for key, item in value.items()}
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookError(400, f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise WebhookError(400, f"{what} must be a list")
    return value


def _string(value: Any, what: str, *, required: bool = True, max_length: int = 0) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise WebhookError(400, f"{what} must be a non-empty string")
    if max_length and len(value) > max_length:
        raise WebhookError(400, f"{what} is longer than {max_length} characters")
    return value


def _timestamp(value: Any) -> dt.datetime:
    try:
        seconds = int(value)
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError) as error:
        raise WebhookError(400, f"invalid timestamp {value!r}") from error


def _contact_names(value: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Map each contact's wa_id (or user id) to (display name, business-scoped user id)."""
    names: dict[str, tuple[str, str]] = {}
    for contact in _list(value.get("contacts", []), "contacts"):
        contact = _dict(contact, "contact")
        profile = contact.get("profile") if isinstance(contact.get("profile"), dict) else {}
        name = profile.get("name")[:255] if isinstance(profile.get("name"), str) else ""
        user_id = contact.get("user_id") if isinstance(contact.get("user_id"), str) else ""
        user_id = user_id if len(user_id) <= 140 else ""
        for key in (contact.get("wa_id"), user_id):
            if isinstance(key, str) and key:
                names[key] = (name, user_id)
    return names


def _inbound_message(message: dict[str, Any], names: dict[str, tuple[str, str]]) -> InboundMessage:
    wa_message_id = _string(message.get("id"), "message id", max_length=255)
    wa_id = _string(message.get("from"), "message from", required=False, max_length=32)
    from_user_id = _string(
        message.get("from_user_id"), "message from_user_id", required=False, max_length=140
    )
    if not wa_id and not from_user_id:
        raise WebhookError(400, "message has neither from nor from_user_id")
    name, user_id = names.get(wa_id) or names.get(from_user_id) or ("", "")
    message_type, text = _content(message)
    return InboundMessage(
        wa_message_id=wa_message_id,
        uid=wa_id or from_user_id,
        wa_id=wa_id,
        user_id=user_id or from_user_id,
        name=name,
        type=message_type,
        text=text,
        timestamp=_timestamp(message.get("timestamp")),
        payload=message,
    )


def _content(message: dict[str, Any]) -> tuple[str, str]:
    """(our message type, the text it carries) for one of Meta's message objects."""
    kind = _string(message.get("type"), "message type")
    body = message.get(kind) if isinstance(message.get(kind), dict) else {}
    if kind == "text":
        return "text", _string(body.get("body"), "text body", required=False)
    if kind == "interactive":
        reply = body.get(body.get("type", "")) if isinstance(body.get("type"), str) else None
        title = reply.get("title") if isinstance(reply, dict) else None
        return ("interactive", title) if isinstance(title, str) else ("unsupported", "")
    if kind == "button":  # the quick-reply button of a template
        text = body.get("text") or body.get("payload")
        return ("interactive", text) if isinstance(text, str) else ("unsupported", "")
    if kind in _MEDIA_TYPES:
        caption = body.get("caption")
        return kind, caption if isinstance(caption, str) else ""
    if kind == "location":
        parts = [body.get("name"), body.get("address")]
        return "location", " — ".join(part for part in parts if isinstance(part, str) and part)
    if kind == "reaction":
        emoji = body.get("emoji")
        return "reaction", emoji if isinstance(emoji, str) else ""
    return "unsupported", ""


def _status_update(status: dict[str, Any]) -> StatusUpdate:
    name = _string(status.get("status"), "status")
    if name not in _STATUSES:
        raise WebhookError(400, f"unknown status {name!r}")
    error_code, error_detail = None, ""
    errors = status.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = first.get("code")
        error_code = code if isinstance(code, int) and 0 <= code < 2**31 else None
        data = first.get("error_data") if isinstance(first.get("error_data"), dict) else {}
        error_detail = str(data.get("details") or first.get("message") or first.get("title") or "")
    return StatusUpdate(
        wa_message_id=_string(status.get("id"), "status id", max_length=255),
        status="read" if name == "played" else name,
        timestamp=_timestamp(status.get("timestamp")),
        error_code=error_code,
        error_detail=error_detail[:1000],
    )


# --- outbound -----------------------------------------------------------------------------------

# Meta's limits for interactive messages.
BUTTONS_MAX, BUTTON_TITLE_MAX = 3, 20
LIST_ROWS_MAX, LIST_ROW_TITLE_MAX = 10, 24
INTERACTIVE_BODY_MAX = 1024
TEXT_BODY_MAX = 4096

# 429 from the HTTP layer, 130429 throughput, 131056 pair rate limit, and Meta's "try again"
# family: the same request can succeed later.
RETRYABLE_CODES = {4, 80007, 130429, 131056, 131000, 131016, 131057, 1, 2}
WINDOW_CLOSED = 131047


class WhatsAppError(VendorError):
    def __init__(self, message: str, *, code: int | None, status: int | None = None) -> None:
        super().__init__(message, status=status)
        self.code = code
        self.retryable = code in RETRYABLE_CODES or status == 429 or (status or 0) >= 500


def text_body(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": text[:TEXT_BODY_MAX], "preview_url": False}}


def buttons_body(prompt: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    """Reply buttons; `options` is (id, title) with titles already within Meta's limit."""
    buttons = [{"type": "reply", "reply": {"id": oid, "title": title}} for oid, title in options]
    return {
        "type": "interactive",
        "interactive": {
            "type": "button",
            "body": {"text": prompt[:INTERACTIVE_BODY_MAX]},
            "action": {"buttons": buttons},
        },
    }


def list_body(prompt: str, button: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    rows = [{"id": oid, "title": title} for oid, title in options]
    return {
        "type": "interactive",
        "interactive": {
            "type": "list",
            "body": {"text": prompt[:INTERACTIVE_BODY_MAX]},
            "action": {"button": button[:BUTTON_TITLE_MAX], "sections": [{"rows": rows}]},
        },
    }


class WhatsAppClient:
    """Sends through the Cloud API `messages` endpoint; returns Meta's message id."""

    def __init__(
        self,
        *,
        api_url: str,
        token: str,
        phone_number_id: str,
        timeout: float,
        attempts: int,
        backoff: float,
    ) -> None:
        self.url = f"{api_url}/{phone_number_id}/messages"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.session = vendor_session()

    def send(self, *, to: str, recipient_user_id: str = "", body: dict[str, Any]) -> str:
        """Send one message; raises WhatsAppError (with Meta's code) or another VendorError."""
        payload = {"messaging_product": "whatsapp", "recipient_type": "individual", **body}
        # A customer without a phone number is reached by their business-scoped user id.
        payload.update({"to": to} if to else {"recipient": recipient_user_id})
        for attempt in range(1, self.attempts + 1):
            try:
                return self._post(payload)
            except VendorError as error:
                if not error.retryable or attempt == self.attempts:
                    raise
                delay = self.backoff * 2 ** (attempt - 1)
                logger.info("whatsapp send retry %d in %.1fs: %s", attempt, delay, error)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _post(self, payload: dict[str, Any]) -> str:
        response = post_json(
            self.session, self.url, json=payload, headers=self.headers, timeout=self.timeout
        )
        try:
            data = response.json()
        except ValueError:
            data = {}
        if response.status_code >= 400 or not isinstance(data, dict):
            error = data.get("error") if isinstance(data, dict) else None
            error = error if isinstance(error, dict) else {}
            code = error.get("code") if isinstance(error.get("code"), int) else None
            details = (error.get("error_data") or {}).get("details") if error else None
            message = str(details or error.get("message") or f"HTTP {response.status_code}")
            raise WhatsAppError(message[:1000], code=code, status=response.status_code)
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as error:
            raise WhatsAppError("response without a message id", code=None) from error


@cache
def whatsapp_client() -> WhatsAppClient:
    return WhatsAppClient(
        api_url=settings.WHATSAPP_API_URL,
        token=settings.WHATSAPP_TOKEN,
        phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
        timeout=settings.WHATSAPP_TIMEOUT,
        attempts=settings.WHATSAPP_SEND_ATTEMPTS,
        backoff=settings.WHATSAPP_RETRY_BACKOFF,
    )
