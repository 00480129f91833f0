"""What Meta POSTs to the webhook: the signature check and the parse into plain dataclasses."""

import datetime as dt
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any


class WebhookError(Exception):
    """A notification chatbridge refuses; `status` is the HTTP answer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _UnusableError(Exception):
    """One item of a notification chatbridge cannot use; the reason never quotes its content."""


@dataclass(frozen=True)
class MediaRef:
    """A customer's file, named by its provider: fetched later by a task, never in the webhook."""

    ref: str  # Meta's media id (resolved with GET /{media-id}), or Twilio's MediaUrl0
    mime_type: str
    filename: str = ""
    sha256: str = ""  # Meta's: base64 (some versions: hex) of the file's SHA-256


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
    # A system notice that the customer's number changed: the new one.
    changed_to: str = ""
    media: MediaRef | None = None
    # Whose customer this is (users.Customer.Provider): Meta's unless another provider parsed it.
    provider: str = "whatsapp"
    # A reply quoting an earlier message (not a button tap): that message's WhatsApp id.
    quotes: str = ""
    # The business number written to: its change's metadata.phone_number_id ("" when absent).
    phone_number_id: str = ""


@dataclass(frozen=True)
class MessageChange:
    """The customer edited or deleted (revoked) one of their earlier messages."""

    kind: str  # "edit" or "revoke"
    wa_message_id: str  # the notice's own id
    original_id: str  # the WhatsApp id of the message it changes
    uid: str
    timestamp: dt.datetime
    payload: dict[str, Any]
    # An edit: the message's new text (a caption, for media).
    text: str = ""


@dataclass(frozen=True)
class StatusUpdate:
    wa_message_id: str
    status: str  # sent, delivered, read, failed (played counts as read)
    timestamp: dt.datetime
    error_code: int | None = None
    error_detail: str = ""
    # What the send put in biz_opaque_callback_data, echoed by Meta ("" when there was none).
    reference: str = ""


@dataclass(frozen=True)
class SkippedItem:
    """An item of a notification in a shape chatbridge does not know, exactly as Meta sent it."""

    kind: str  # message, status, or the container that held it: entry, change
    reason: str  # never the item's text: it is logged
    payload: Any
    wa_message_id: str = ""  # Meta's id, when the item has a usable one


@dataclass(frozen=True)
class TemplateStatus:
    """Meta's word on one of the business's templates (message_template_status_update)."""

    name: str
    language: str
    event: str  # APPROVED, REJECTED, PAUSED, DISABLED, PENDING_DELETION...
    reason: str = ""


@dataclass(frozen=True)
class Notification:
    messages: list[InboundMessage] = field(default_factory=list)
    statuses: list[StatusUpdate] = field(default_factory=list)
    changes: list[MessageChange] = field(default_factory=list)
    template_statuses: list[TemplateStatus] = field(default_factory=list)
    skipped: list[SkippedItem] = field(default_factory=list)


_MEDIA_TYPES = {"image", "audio", "video", "document", "sticker"}
_STATUSES = {"sent", "delivered", "read", "failed", "played"}
_STATUS_NAME = re.compile(r"[a-z_]{1,40}\Z")


class InboundWebhook:
    """A POST from Meta: `validate()` checks the signature, `parse()` reads every item.

    Only the envelope can be refused (400): a body that is not strict JSON, not an object, not
    `"object": "whatsapp_business_account"`, or whose `entry` is not a list. Meta redelivers a
    refused POST for days, with every message batched beside the odd one, so inside the envelope
    each item stands alone: one chatbridge cannot use becomes a `SkippedItem` and the others
    are read as usual. A container in the wrong shape (an `entry` that is not an object or has
    no `changes` list, a `change` that is not an object or whose `value` is not an object) is
    one unusable item of its own, as are `messages` or `statuses` that are not lists (kept with
    their change). `contacts` only name the senders: a malformed one is ignored, and the
    messages beside it are stored without a name.
    """

    def __init__(self, *, body: bytes, signature: str | None, app_secrets: Sequence[str]) -> None:
        self.body = body
        self.signature = signature or ""
        self.app_secrets = [secret for secret in app_secrets if secret]

    def validate(self) -> str:
        """The app secret that signed the body (several numbers may belong to several apps);
        WebhookError(401) if none did."""
        if not self.signature.startswith("sha256="):
            raise WebhookError(401, "missing X-Hub-Signature-256")
        # As bytes: a header may carry any byte (Django reads headers as latin-1), and
        # compare_digest refuses str with non-ASCII characters.
        given = self.signature.removeprefix("sha256=").lower().encode("utf-8", "replace")
        signed_with = ""
        for secret in self.app_secrets:  # each compared, whichever matches: constant work
            # Hash the raw bytes: Meta signs its own escaped JSON, not a re-serialisation of it.
            expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
            if hmac.compare_digest(expected.encode(), given):
                signed_with = signed_with or secret
        if not signed_with:
            raise WebhookError(401, "signature does not match")
        return signed_with

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
            try:
                changes = _list(_dict(entry, "entry").get("changes"), "entry changes")
            except _UnusableError as error:
                notification.skipped.append(SkippedItem("entry", str(error), entry))
                continue
            for change in changes:
                _read_change(change, notification)
        return notification


def _read_change(change: Any, notification: Notification) -> None:
    try:
        kind = _dict(change, "change").get("field")
        if kind not in ("messages", "message_template_status_update"):
            return  # account and quality updates: not ours to handle
        value = _dict(change.get("value"), "change value")
        if kind == "message_template_status_update":
            notification.template_statuses.append(_template_status(value))
            return
    except _UnusableError as error:
        notification.skipped.append(SkippedItem("change", str(error), change))
        return
    names = _contact_names(value)
    metadata = value.get("metadata")
    number = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
    number = number if isinstance(number, str) and len(number) <= 64 else ""
    for message in _items(value, "messages", change=change, notification=notification):
        try:
            message = _dict(message, "message")
            if _kind(message) in _CHANGE_TYPES:
                notification.changes.append(_message_change(message))
            else:
                inbound = _inbound_message(message, names)
                notification.messages.append(replace(inbound, phone_number_id=number))
        except _UnusableError as error:
            notification.skipped.append(_skipped("message", error, message))
    for status in _items(value, "statuses", change=change, notification=notification):
        try:
            notification.statuses.append(_status_update(_dict(status, "status")))
        except _UnusableError as error:
            notification.skipped.append(_skipped("status", error, status))


def _items(
    value: dict[str, Any], key: str, *, change: Any, notification: Notification
) -> list[Any]:
    """The value's messages or statuses; if they are not a list, their change is skipped
    (the other list of the same value is still read)."""
    items = value.get(key, [])
    if isinstance(items, list):
        return items
    notification.skipped.append(SkippedItem("change", f"{key} must be a list", change))
    return []


def _skipped(kind: str, error: _UnusableError, item: Any) -> SkippedItem:
    wa_message_id = item.get("id") if isinstance(item, dict) else None
    if not isinstance(wa_message_id, str) or len(wa_message_id) > 255:
        wa_message_id = ""  # no id, or not one Meta would send: the item's hash identifies it
    return SkippedItem(kind, str(error), item, wa_message_id)


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
        raise _UnusableError(f"{what} must be an object")
    return value


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _UnusableError(f"{what} must be a list")
    return value


def _string(value: Any, what: str, *, required: bool = True, max_length: int = 0) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise _UnusableError(f"{what} must be a non-empty string")
    if max_length and len(value) > max_length:
        raise _UnusableError(f"{what} is longer than {max_length} characters")
    return value


def _timestamp(value: Any) -> dt.datetime:
    try:
        seconds = int(value)
        return dt.datetime.fromtimestamp(seconds, tz=dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError) as error:
        # Not the value itself: the reason is logged, and the field may hold anything.
        raise _UnusableError(f"invalid timestamp ({type(value).__name__})") from error


def _contact_names(value: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Map each contact's wa_id (or user id) to (display name, business-scoped user id).
    Contacts only name senders: a malformed one is skipped, not a reason to drop a message."""
    names: dict[str, tuple[str, str]] = {}
    contacts = value.get("contacts", [])
    for contact in contacts if isinstance(contacts, list) else []:
        if not isinstance(contact, dict):
            continue
        profile = _object(contact.get("profile"))
        name = profile.get("name")
        name = name[:255] if isinstance(name, str) else ""
        user_id = contact.get("user_id")
        user_id = user_id if isinstance(user_id, str) and len(user_id) <= 140 else ""
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
        raise _UnusableError("message has neither from nor from_user_id")
    name, user_id = names.get(wa_id) or names.get(from_user_id) or ("", "")
    message_type, text = _content(message)
    media = _media_ref(message, message_type)
    context = _object(message.get("context"))
    quoted = context.get("id") if message_type != "interactive" else None
    changed_to = ""
    system = _object(message.get("system"))
    if message_type == "system" and system.get("type") == "user_changed_number":
        new = system.get("wa_id")
        changed_to = new if isinstance(new, str) and new.isdigit() and len(new) <= 32 else ""
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
        changed_to=changed_to,
        media=media,
        quotes=quoted if isinstance(quoted, str) and len(quoted) <= 255 else "",
    )


_CHANGE_TYPES = {"edit", "revoke"}


def _kind(message: dict[str, Any]) -> str:
    """The item's `type` when it is a string (anything else is refused later, by _content)."""
    kind = message.get("type")
    return kind if isinstance(kind, str) else ""


def _message_change(message: dict[str, Any]) -> MessageChange:
    """An `edit` or `revoke` item (Meta's edit and revoke webhooks): it names the message it
    changes in `original_message_id`; an edit carries the new message whole."""
    kind = message["type"]
    body = _dict(message.get(kind), f"{kind} body")
    text = ""
    if kind == "edit":
        edited = _dict(body.get("message"), "edited message")
        _type, text = _content(edited)
    wa_id = _string(message.get("from"), "message from", required=False, max_length=32)
    user_id = _string(
        message.get("from_user_id"), "message from_user_id", required=False, max_length=140
    )
    if not wa_id and not user_id:
        raise _UnusableError("message has neither from nor from_user_id")
    return MessageChange(
        kind=kind,
        wa_message_id=_string(message.get("id"), "message id", max_length=255),
        original_id=_string(body.get("original_message_id"), "original_message_id", max_length=255),
        uid=wa_id or user_id,
        timestamp=_timestamp(message.get("timestamp")),
        payload=message,
        text=text,
    )


def _media_ref(message: dict[str, Any], message_type: str) -> MediaRef | None:
    if message_type not in _MEDIA_TYPES:
        return None
    body = _object(message.get(message_type))
    media_id = body.get("id")
    if not isinstance(media_id, str) or not media_id or len(media_id) > 1000:
        return None  # nothing to fetch: the message keeps its caption and says so
    declared = {key: body.get(key) for key in ("mime_type", "filename", "sha256")}
    mime_type, filename, sha256 = (
        value if isinstance(value, str) else "" for value in declared.values()
    )
    return MediaRef(
        ref=media_id, mime_type=mime_type[:255], filename=filename[:255], sha256=sha256[:100]
    )


def _object(value: Any) -> dict[str, Any]:
    """An optional part of an item: itself if it is an object, else empty."""
    return value if isinstance(value, dict) else {}


def _content(message: dict[str, Any]) -> tuple[str, str]:
    """(our message type, the text it carries) for one of Meta's message objects."""
    kind = _string(message.get("type"), "message type")
    body = _object(message.get(kind))
    if kind == "text":
        return "text", _string(body.get("body"), "text body", required=False)
    if kind == "interactive":
        reply_type = body.get("type")
        reply = body.get(reply_type) if isinstance(reply_type, str) else None
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
    if kind == "contacts":
        cards = message.get("contacts")
        names = [
            _object(card.get("name")).get("formatted_name")
            for card in (cards if isinstance(cards, list) else [])
            if isinstance(card, dict)
        ]
        return "contacts", ", ".join(name for name in names if isinstance(name, str) and name)
    if kind == "reaction":
        emoji = body.get("emoji")
        return "reaction", emoji if isinstance(emoji, str) else ""
    if kind == "system":
        text = body.get("body")
        return "system", text if isinstance(text, str) else ""
    return "unsupported", ""


def _template_status(value: dict[str, Any]) -> TemplateStatus:
    reason = value.get("reason")
    return TemplateStatus(
        name=_string(value.get("message_template_name"), "template name", max_length=512),
        language=_string(
            value.get("message_template_language"), "template language", max_length=15
        ),
        event=_string(value.get("event"), "template event", max_length=30),
        reason=reason[:200] if isinstance(reason, str) and reason != "NONE" else "",
    )


def _status_update(status: dict[str, Any]) -> StatusUpdate:
    name = _string(status.get("status"), "status")
    if name not in _STATUSES:
        # A new kind of Meta's is worth naming in the log; anything else is not repeated.
        raise _UnusableError(
            f"unknown status {name!r}" if _STATUS_NAME.match(name) else "unknown status"
        )
    error_code, error_detail = None, ""
    errors = status.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        code = first.get("code")
        error_code = code if isinstance(code, int) and 0 <= code < 2**31 else None
        data = _object(first.get("error_data"))
        error_detail = str(data.get("details") or first.get("message") or first.get("title") or "")
    return StatusUpdate(
        wa_message_id=_string(status.get("id"), "status id", max_length=255),
        status="read" if name == "played" else name,
        timestamp=_timestamp(status.get("timestamp")),
        error_code=error_code,
        error_detail=error_detail[:1000],
        reference=_reference(status.get("biz_opaque_callback_data")),
    )


def _reference(value: Any) -> str:
    # Ours, when it is: at most 512 characters (Meta's limit); anything else is not ours.
    return value if isinstance(value, str) and len(value) <= 512 else ""


def interactive_reply_id(message: Any) -> str:
    """The id of the button or list row a customer tapped (a template's quick reply: its
    payload), from the message object as Meta sent it; "" when there is none."""
    if not isinstance(message, dict):
        return ""
    body = _object(message.get("interactive"))
    kind = body.get("type")
    reply = _object(body.get(kind)) if isinstance(kind, str) else {}
    value = reply.get("id") or _object(message.get("button")).get("payload")
    return value if isinstance(value, str) else ""
