"""Fake WhatsApp Cloud API: the ``POST /{version}/{phone_number_id}/messages`` endpoint.

Sent messages are kept with a human-readable rendering so tests (and a developer watching
``/_fake/messages``) can assert on what the user would see, not on payload internals.
"""

from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import hmac
import json
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar

import requests

from chatbridge.fakes.base import (
    ControlError,
    FakeServer,
    JSONDict,
    Request,
    Response,
    control_int,
    control_number,
    sent_listing,
)

# Titles Meta uses for the codes we script most; unknown codes still get a sane message.
ERROR_TITLES: dict[int, tuple[str, str]] = {
    100: ("Invalid parameter", "The parameter is invalid."),
    190: ("Invalid OAuth access token", "Invalid OAuth access token."),
    131000: ("Something went wrong", "Message failed to send because of an unknown error."),
    131026: ("Message undeliverable", "Unable to deliver message."),
    131047: (
        "Re-engagement message",
        (
            "Message failed to send because more than 24 hours have passed since the "
            "customer last replied to this number."
        ),
    ),
    131051: ("Unsupported message type", "Message type is not currently supported."),
    131056: (
        "(Business Account, Consumer Account) pair rate limit hit",
        (
            "Too many messages sent from the sender phone number to the same recipient "
            "phone number in a short period of time."
        ),
    ),
    130429: ("Rate limit hit", "Cloud API message throughput has been reached."),
    131052: ("Media download error", "Unable to download the media sent by the user."),
    131053: ("Media upload error", "Unable to upload the media used in the message."),
    132001: ("Template name does not exist in the translation", "template name does not exist"),
}


def meta_error(code: int, details: str | None = None, message: str | None = None) -> JSONDict:
    """Build a Graph API error body the way Meta shapes them."""
    title, default_details = ERROR_TITLES.get(code, ("Error", "An error occurred."))
    return {
        "error": {
            "message": message or f"(#{code}) {title}",
            "type": "OAuthException",
            "code": code,
            "error_data": {
                "messaging_product": "whatsapp",
                "details": details if details is not None else default_details,
            },
            "fbtrace_id": "fake",
        }
    }


UNAUTHORIZED: JSONDict = {
    "error": {
        "message": "Invalid OAuth access token.",
        "type": "OAuthException",
        "code": 190,
        "fbtrace_id": "fake",
    }
}


def render_text(body: JSONDict) -> str:
    """What the recipient would read, one line per visible element."""
    kind = body.get("type", "text")  # Meta defaults a missing type to text
    content = body.get(kind) if isinstance(kind, str) else None
    if not isinstance(content, dict):
        return ""
    if kind == "text":
        return str(content.get("body", ""))
    if kind == "interactive":
        lines = [str((content.get("body") or {}).get("text", ""))]
        action = content.get("action") or {}
        for button in action.get("buttons") or []:
            lines.append(str((button.get("reply") or {}).get("title", "")))
        for section in action.get("sections") or []:
            for row in section.get("rows") or []:
                lines.append(str(row.get("title", "")))
        parameters = action.get("parameters") or {}
        if "display_text" in parameters:  # cta_url
            lines.append(str(parameters["display_text"]))
        return "\n".join(lines)
    if kind == "template":
        return f"[template {content.get('name', '')}]"
    if kind == "reaction":
        return str(content.get("emoji", ""))
    # Media: show the caption when present, otherwise just say what was sent.
    return str(content.get("caption") or f"[{kind}]")


def webhook_notification(*, phone_number_id: str, **value: Any) -> JSONDict:
    """What Meta POSTs to a business's webhook: one entry, one `messages` change whose value
    holds `value` (messages and contacts, or statuses)."""
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "fake-waba",
                "changes": [
                    {
                        "field": "messages",
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {
                                "display_phone_number": "15550000000",
                                "phone_number_id": phone_number_id,
                            },
                            **value,
                        },
                    }
                ],
            }
        ],
    }


def _parse_path(path: str, endpoint: str = "messages") -> str | None:
    """Return the phone number id of a ``.../vN.N/<id>/<endpoint>`` path, else None."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[-1] == endpoint and parts[-3].startswith("v"):
        return parts[-2]
    return None


def _media_id_path(path: str) -> str | None:
    """The media id of a ``.../vN.N/<media-id>`` path, else None."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[-2].startswith("v") and parts[-1].isdigit():
        return parts[-1]
    return None


def media_sha256(content: bytes) -> str:
    """The hash as Meta declares it: base64 of the SHA-256 digest."""
    return base64.b64encode(hashlib.sha256(content).digest()).decode()


@dataclass
class FakeMedia:
    content: bytes
    mime_type: str
    filename: str = ""


def _multipart_fields(request: Request) -> dict[str, tuple[str, bytes, str]]:
    """A multipart/form-data body as {name: (filename, content, content type)}."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        return {}
    head = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    parsed = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.raw)
    fields = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name:
            content = part.get_payload(decode=True)
            content = content if isinstance(content, bytes) else b""
            fields[str(name)] = (part.get_filename() or "", content, part.get_content_type())
    return fields


@dataclass(frozen=True)
class StatusWebhook:
    """Where the fake reports each accepted message's `sent` and `delivered`, as Meta does: a
    signed notification to the business's webhook, echoing biz_opaque_callback_data."""

    url: str
    app_secret: str
    delay: float = 0.0  # seconds from the send's answer to its `sent` status
    patience: float = 60.0  # how long an undeliverable status is retried (Meta: 7 days)
    read_after: float | None = None  # then `read` this long after `delivered` (None: never)


class FakeWhatsApp(FakeServer):
    """Fake WhatsApp Cloud API send endpoint with recorded messages and read receipts; with a
    status webhook, it reports statuses back like Meta."""

    control_keys: ClassVar[frozenset[str]] = frozenset(
        {"statuses", "templates", "media_url_ttl", "corrupt_downloads"}
    )

    def __init__(
        self,
        port: int = 0,
        token: str | None = None,
        host: str = "127.0.0.1",
        status_webhook: StatusWebhook | None = None,
        templates: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.token = token
        self.default_status_webhook = status_webhook
        # (name, language) of the templates the business has approved; any other gets 132001.
        self.default_templates = frozenset(templates)
        super().__init__(port=port, host=host)

    def _reset_state(self) -> None:
        self.sent: list[JSONDict] = []
        self.read_receipts: list[JSONDict] = []
        # Other business numbers and their tokens (number_add): each sends with its own.
        self.number_tokens: dict[str, str] = {}
        self.status_webhook = self.default_status_webhook
        self.templates = set(self.default_templates)
        # Media by id: what customers sent (media_add) and what the business uploaded.
        self.media: dict[str, FakeMedia] = {}
        self.uploads: list[JSONDict] = []
        self.last_upload_fields: dict[str, tuple[str, bytes, str]] = {}
        # Download URLs handed out by GET /{media-id}: token -> (media id, expiry).
        self.media_urls: dict[str, tuple[str, float]] = {}
        self.media_url_ttl = 300.0  # Meta's URLs last five minutes
        self.corrupt_downloads = 0  # the next N downloads lose their last byte
        # (wamid, status, HTTP status of the webhook's answer) for every status delivered.
        self.statuses_delivered: list[tuple[str, str, int]] = []

    def media_add(self, content: bytes, mime_type: str, filename: str = "") -> str:
        """A file a customer sent: its media id, for a webhook to name."""
        with self.lock:
            media_id = str(10**15 + len(self.media) + 1)
            self.media[media_id] = FakeMedia(content, mime_type, filename)
            return media_id

    def _apply_control(self, data: JSONDict) -> None:
        if "templates" in data:
            self.templates = {(str(n), str(lang)) for n, lang in data["templates"]}
        if "media_url_ttl" in data:
            self.media_url_ttl = control_number(data, "media_url_ttl")
        if "corrupt_downloads" in data:
            self.corrupt_downloads = control_int(data, "corrupt_downloads")
        if "statuses" not in data:
            return
        spec = data["statuses"]
        if spec is None:
            self.status_webhook = None
            return
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            raise ControlError("statuses must be null or an object with url and app_secret")
        self.status_webhook = StatusWebhook(
            url=spec["url"],
            app_secret=str(spec.get("app_secret", "")),
            delay=control_number(spec, "delay_ms") / 1000.0 if "delay_ms" in spec else 0.0,
        )

    def _report_statuses(self, message: JSONDict, webhook: StatusWebhook) -> None:
        """`sent`, `delivered` and, with `read_after`, `read` for one accepted message (in a
        thread of its own)."""
        steps = [("sent", webhook.delay), ("delivered", 0.0)]
        if webhook.read_after is not None:
            steps.append(("read", webhook.read_after))
        for name, pause in steps:
            time.sleep(pause)
            item: JSONDict = {
                "id": message["id"],
                "status": name,
                "timestamp": str(int(time.time())),
                "recipient_id": message["to"],
            }
            reference = message["body"].get("biz_opaque_callback_data")
            if reference is not None:
                item["biz_opaque_callback_data"] = reference
            notification = webhook_notification(
                phone_number_id=message["phone_number_id"], statuses=[item]
            )
            body = json.dumps(notification).encode()
            signature = hmac.new(webhook.app_secret.encode(), body, hashlib.sha256).hexdigest()
            answer = _post_until_accepted(webhook, body, f"sha256={signature}")
            with self.lock:
                self.statuses_delivered.append((message["id"], name, answer))

    # -- scripting helpers ---------------------------------------------------------------

    def fail_with_code(
        self,
        code: int,
        http_status: int = 400,
        count: int = 1,
        details: str | None = None,
    ) -> None:
        """Make the next ``count`` sends fail with a Meta error ``code``."""
        self.fail_next(http_status, meta_error(code, details), count)

    def default_failure_body(self, status: int) -> JSONDict:
        return meta_error(131000)

    def _control_fail(self, spec: JSONDict) -> None:
        if "code" not in spec:
            super()._control_fail(spec)
            return
        details = spec.get("details")
        self.fail_with_code(
            control_int(spec, "code"),
            http_status=control_int(spec, "http_status", default=400),
            count=control_int(spec, "count", default=1),
            details=str(details) if details is not None else None,
        )

    def sent_to(self, recipient: str) -> list[JSONDict]:
        with self.lock:
            return [m for m in self.sent if m["to"] == recipient]

    def wait_for_sent(
        self, count: int, timeout: float = 5.0, to: str | None = None
    ) -> list[JSONDict]:
        """Block until ``count`` messages were sent (to ``to`` if given); return them."""

        def matching() -> list[JSONDict]:
            return [m for m in self.sent if to is None or m["to"] == to]

        try:
            self.wait_until(lambda: len(matching()) >= count, timeout, "sent messages")
        except AssertionError:
            with self.lock:
                summary = "\n".join(f"  #{m['seq']} to={m['to']}: {m['text']!r}" for m in self.sent)
            target = f" to {to}" if to is not None else ""
            raise AssertionError(
                f"expected {count} WhatsApp message(s){target} within {timeout}s; "
                f"sent so far:\n{summary or '  (nothing)'}"
            ) from None
        with self.lock:
            return matching()

    def handle_control_get(self, request: Request) -> Response | None:
        if request.path != "/_fake/messages":
            return None
        with self.lock:
            return sent_listing(request, self.sent)

    def handle_control_post(self, request: Request) -> Response | None:
        """``POST /_fake/media?mime_type=…&filename=…`` with the file as the body: a file a
        customer sent (``make say FILE=…``); answers its media id."""
        if request.path != "/_fake/media":
            return None
        mime_type = request.query.get("mime_type") or ""
        if not request.raw or not mime_type:
            raise ControlError("POST the file as the body, with ?mime_type=")
        media_id = self.media_add(request.raw, mime_type, request.query.get("filename") or "")
        return Response(200, {"id": media_id})

    # -- vendor API ----------------------------------------------------------------------

    def number_add(self, phone_number_id: str, token: str) -> None:
        """Another business number of the account, sending with its own token."""
        self.number_tokens[phone_number_id] = token

    def handle_vendor(self, request: Request) -> Response:
        authorization = request.headers.get("authorization")
        number = _parse_path(request.path) or _parse_path(request.path, "media")
        if number in self.number_tokens:
            if authorization != f"Bearer {self.number_tokens[number]}":
                return Response(401, UNAUTHORIZED)
        elif self.token is not None and authorization not in {
            f"Bearer {token}" for token in (self.token, *self.number_tokens.values())
        }:
            return Response(401, UNAUTHORIZED)
        if request.path.startswith("/_media/") and request.method == "GET":
            return self._media_download(request.path.removeprefix("/_media/"))
        media_id = _media_id_path(request.path)
        if media_id is not None and request.method == "GET":
            return self._media_resolve(media_id)
        upload_to = _parse_path(request.path, "media")
        if upload_to is not None and request.method == "POST":
            return self._media_upload(request)
        phone_number_id = _parse_path(request.path)
        if phone_number_id is None:
            return Response(404, meta_error(100, message="Unsupported request path"))
        if request.method != "POST":
            return Response(400, meta_error(100, message="Unsupported method"))
        body: Any = request.json
        if not isinstance(body, dict):
            return Response(400, meta_error(100, "Request body must be a JSON object"))
        if body.get("messaging_product") != "whatsapp":
            return Response(400, meta_error(100, "The parameter messaging_product is required."))
        if body.get("status") == "read":
            with self.lock:
                self.read_receipts.append(body)
            return Response(200, {"success": True})

        recipient = body.get("to") or body.get("recipient")
        if not recipient:
            return Response(400, meta_error(100, "The parameter to is required."))
        refused = self._refused_content(body)
        if refused is not None:
            return refused
        message_id = f"wamid.{uuid.uuid4().hex}"
        record = {
            "seq": len(self.sent) + 1,
            "id": message_id,
            "to": recipient,
            "type": body.get("type", "text"),
            "phone_number_id": phone_number_id,
            "body": body,
            "text": render_text(body),
            "at": time.time(),
        }
        with self.lock:
            self.sent.append(record)
            webhook = self.status_webhook
        if webhook is not None:
            threading.Thread(
                target=self._report_statuses, args=(record, webhook), daemon=True
            ).start()
        return Response(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": recipient, "wa_id": recipient}],
                "messages": [{"id": message_id}],
            },
        )

    def _refused_content(self, body: JSONDict) -> Response | None:
        """A template the business does not have (132001), or media by an id never uploaded."""
        kind = body.get("type")
        content = body.get(kind) if isinstance(kind, str) else None
        if kind == "template" and isinstance(content, dict):
            language = (content.get("language") or {}).get("code", "")
            if (content.get("name"), language) not in self.templates:
                return Response(
                    404,
                    meta_error(
                        132001,
                        f"template name ({content.get('name')}) does not exist in {language}",
                    ),
                )
        if isinstance(content, dict) and "id" in content and content["id"] not in self.media:
            return Response(400, meta_error(131053, "the media id is not valid"))
        return None

    def _media_resolve(self, media_id: str) -> Response:
        media = self.media.get(media_id)
        if media is None:
            message = f"Unsupported get request. Object with ID '{media_id}' does not exist"
            return Response(400, meta_error(100, message=message))
        token = uuid.uuid4().hex
        self.media_urls[token] = (media_id, time.monotonic() + self.media_url_ttl)
        return Response(
            200,
            {
                "messaging_product": "whatsapp",
                "url": f"{self.url}/_media/{token}",
                "mime_type": media.mime_type,
                "sha256": media_sha256(media.content),
                "file_size": len(media.content),
                "id": media_id,
            },
        )

    def _media_download(self, token: str) -> Response:
        media_id, expires = self.media_urls.get(token, ("", 0.0))
        if not media_id or time.monotonic() > expires:
            return Response(404, meta_error(131052, "the URL has expired"))
        media = self.media[media_id]
        content = media.content
        if self.corrupt_downloads > 0:
            self.corrupt_downloads -= 1
            content = content[:-1]
        return Response(200, content=content, headers={"Content-Type": media.mime_type})

    def _media_upload(self, request: Request) -> Response:
        fields = _multipart_fields(request)
        product = fields.get("messaging_product", ("", b"", ""))[1]
        if "file" not in fields or product != b"whatsapp":
            return Response(400, meta_error(100, "file and messaging_product are required"))
        self.last_upload_fields = fields
        filename, content, mime_type = fields["file"]
        declared = fields.get("type", ("", b"", ""))[1].decode() or mime_type
        media_id = str(2 * 10**15 + len(self.uploads) + 1)
        self.media[media_id] = FakeMedia(content, declared, filename)
        self.uploads.append(
            {"id": media_id, "type": declared, "filename": filename, "size": len(content)}
        )
        return Response(200, {"id": media_id})


def _post_until_accepted(webhook: StatusWebhook, body: bytes, signature: str) -> int:
    """POST a notification until it is answered 200, backing off, for `patience` seconds; the
    last answer's HTTP status (0: never reached)."""
    deadline, pause, answer = time.monotonic() + webhook.patience, 0.2, 0
    while True:
        try:
            answer = requests.post(
                webhook.url,
                data=body,
                headers={"Content-Type": "application/json", "X-Hub-Signature-256": signature},
                timeout=10,
            ).status_code
        except requests.RequestException:
            answer = 0
        if answer == 200 or time.monotonic() + pause > deadline:
            return answer
        time.sleep(pause)
        pause = min(pause * 2, 5.0)
