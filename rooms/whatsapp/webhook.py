"""What Meta POSTs to the webhook: the signature check and the parse into plain dataclasses."""

import datetime as dt
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Any


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
