"""The Cloud API's `messages` endpoint: message bodies, Meta's limits and codes, the client."""

import base64
import hashlib
import logging
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import requests
from django.conf import settings

from chatbridge.http import (
    MediaTooLarge,
    VendorConnectionLost,
    VendorError,
    VendorTimeout,
    post_json,
    read_at_most,
    vendor_request,
    vendor_session,
)

logger = logging.getLogger("chatbridge.whatsapp")

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


CAPTION_MAX = 1024


def media_link_body(kind: str, link: str, *, caption: str = "") -> dict[str, Any]:
    """An image, video or audio the Cloud API fetches from `link` (audio takes no caption)."""
    media: dict[str, Any] = {"link": link}
    if caption and kind != "audio":
        media["caption"] = caption[:CAPTION_MAX]
    return {"type": kind, kind: media}


# What WhatsApp carries, per kind of media, and how large (Meta's supported-media table). A
# sticker is 100 KB static, 500 KB animated: the larger limit is checked.
MB = 1024 * 1024
MEDIA_LIMITS = {
    "image": 5 * MB,
    "video": 16 * MB,
    "audio": 16 * MB,
    "document": 100 * MB,
    "sticker": 500 * 1024,
}
MEDIA_KINDS = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "sticker",
    "video/mp4": "video",
    "video/3gpp": "video",
    "audio/aac": "audio",
    "audio/amr": "audio",
    "audio/mpeg": "audio",
    "audio/mp4": "audio",
    "audio/ogg": "audio",
    "text/plain": "document",
    "application/pdf": "document",
    "application/msword": "document",
    "application/vnd.ms-excel": "document",
    "application/vnd.ms-powerpoint": "document",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "document",
}


def mime_base(mime_type: str) -> str:
    """`audio/ogg; codecs=opus` -> `audio/ogg`."""
    return mime_type.split(";", 1)[0].strip().lower()


def media_id_body(kind: str, media_id: str, *, caption: str = "", filename: str = "") -> dict:
    """A file uploaded to WhatsApp, sent by its media id (audio and stickers take no caption;
    a document shows its file name)."""
    media: dict[str, Any] = {"id": media_id}
    if caption and kind not in ("audio", "sticker"):
        media["caption"] = caption[:CAPTION_MAX]
    if filename and kind == "document":
        media["filename"] = filename
    return {"type": kind, kind: media}


def template_body(name: str, language: str, parameters: list[str]) -> dict[str, Any]:
    """An approved template, its body's parameters as text, in order."""
    # "deterministic": the only language policy the Cloud API has (its schema requires it).
    template: dict[str, Any] = {
        "name": name,
        "language": {"policy": "deterministic", "code": language},
    }
    if parameters:
        values = [{"type": "text", "text": value} for value in parameters]
        template["components"] = [{"type": "body", "parameters": values}]
    return {"type": "template", "template": template}


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


def read_mark_payload(wa_message_id: str, *, typing: bool) -> dict[str, Any]:
    """Marks the customer's message (and the earlier ones) read; with `typing`, the customer also
    sees that an answer is being written, until it arrives or 25 s pass."""
    payload: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "status": "read",
        "message_id": wa_message_id,
    }
    if typing:
        payload["typing_indicator"] = {"type": "text"}
    return payload


def message_payload(
    *, to: str, recipient_user_id: str = "", body: dict[str, Any], reference: str = ""
) -> dict[str, Any]:
    """What the `messages` endpoint is sent for one message body."""
    payload = {"messaging_product": "whatsapp", "recipient_type": "individual", **body}
    if reference:
        payload["biz_opaque_callback_data"] = reference
    # A customer without a phone number is reached by their business-scoped user id.
    payload.update({"to": to} if to else {"recipient": recipient_user_id})
    return payload


@dataclass(frozen=True)
class FetchedMedia:
    content: bytes
    mime_type: str  # as the provider's media endpoint names it
    sha256: str = ""  # the provider's declared hash ("" when it gave none)


def sha256_matches(content: bytes, declared: str) -> bool:
    """Meta's `sha256` is the digest in base64 (some versions and BSPs: hex)."""
    digest = hashlib.sha256(content).digest()
    return declared.strip() in (base64.b64encode(digest).decode(), digest.hex())


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
        upload_timeout: float = 60.0,
    ) -> None:
        self.api_url = api_url
        self.url = f"{api_url}/{phone_number_id}/messages"
        self.upload_url = f"{api_url}/{phone_number_id}/media"
        self.headers = {"Authorization": f"Bearer {token}"}
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.upload_timeout = upload_timeout
        self.session = vendor_session()

    def send(
        self, *, to: str, recipient_user_id: str = "", body: dict[str, Any], reference: str = ""
    ) -> str:
        """Send one message; raises WhatsAppError (with Meta's code) or another VendorError.
        `reference` goes in biz_opaque_callback_data, which Meta echoes in the statuses."""
        payload = message_payload(
            to=to, recipient_user_id=recipient_user_id, body=body, reference=reference
        )
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

    def mark_read(self, wa_message_id: str, *, typing: bool) -> bool:
        """One read mark (and typing indicator), never retried and never raised: a courtesy to
        the customer must not hold up or fail the answer. False if WhatsApp did not take it."""
        try:
            response = post_json(
                self.session,
                self.url,
                json=read_mark_payload(wa_message_id, typing=typing),
                headers=self.headers,
                timeout=min(self.timeout, 3.0),
            )
        except VendorError as error:
            logger.info("read mark not sent: %s", error)
            return False
        if response.status_code >= 400:
            logger.info("read mark refused: HTTP %s", response.status_code)
            return False
        return True

    def media_fetch(self, media_id: str, *, max_bytes: int, timeout: float) -> FetchedMedia:
        """A customer's file: its URL from `GET /{media-id}` (it expires within minutes, so it
        is fetched at once, and resolved again on every attempt), then the bytes, with the same
        bearer token. Refuses more than `max_bytes` (MediaTooLarge) before or while reading."""
        response = vendor_request(
            self.session,
            "GET",
            f"{self.api_url}/{media_id}",
            headers=self.headers,
            timeout=self.timeout,
        )
        info = _answer(response)
        size, url = info.get("file_size"), info.get("url")
        if isinstance(size, int) and size > max_bytes:
            raise MediaTooLarge(f"{size} bytes, more than {max_bytes}")
        if not isinstance(url, str) or not url:
            raise WhatsAppError("media without a URL", code=None)
        download = vendor_request(
            self.session, "GET", url, headers=self.headers, timeout=timeout, stream=True
        )
        with download:
            if download.status_code >= 400:
                raise WhatsAppError(
                    f"download answered HTTP {download.status_code}",
                    code=None,
                    status=download.status_code,
                )
            content = read_at_most(download, max_bytes)
        mime_type, sha256 = info.get("mime_type"), info.get("sha256")
        return FetchedMedia(
            content=content,
            mime_type=mime_type if isinstance(mime_type, str) else "",
            sha256=sha256 if isinstance(sha256, str) else "",
        )

    def media_upload(self, content: bytes, *, mime_type: str, filename: str) -> str:
        """Upload a file for sending (`POST /{phone-number-id}/media`); its media id. Unlike a
        send, a timeout or a lost connection is retried too: a second upload of one file costs
        nothing but an unused id."""
        for attempt in range(1, self.attempts + 1):
            try:
                response = vendor_request(
                    self.session,
                    "POST",
                    self.upload_url,
                    headers=self.headers,
                    timeout=self.upload_timeout,
                    data={"messaging_product": "whatsapp", "type": mime_type},
                    files={"file": (filename or "file", content, mime_type)},
                )
                media_id = _answer(response).get("id")
                if not isinstance(media_id, str) or not media_id:
                    raise WhatsAppError("upload answered without a media id", code=None)
                return media_id
            except VendorError as error:
                unanswered = isinstance(error, VendorTimeout | VendorConnectionLost)
                if not (error.retryable or unanswered) or attempt == self.attempts:
                    raise
                time.sleep(self.backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _post(self, payload: dict[str, Any]) -> str:
        response = post_json(
            self.session, self.url, json=payload, headers=self.headers, timeout=self.timeout
        )
        data = _answer(response)
        try:
            return str(data["messages"][0]["id"])
        except (KeyError, IndexError, TypeError) as error:
            raise WhatsAppError("response without a message id", code=None) from error


def _answer(response: requests.Response) -> dict[str, Any]:
    """A Graph API answer's JSON object; WhatsAppError with Meta's code if it is an error."""
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
    return data


@dataclass(frozen=True)
class Sender:
    """A business number messages go out from: its phone number id and access token."""

    phone_number_id: str
    token: str = field(repr=False)


@cache
def whatsapp_client(sender: Sender | None = None) -> WhatsAppClient:
    """The client of one business number (None: the main one, WHATSAPP_PHONE_NUMBER_ID)."""
    return WhatsAppClient(
        api_url=settings.WHATSAPP_API_URL,
        token=sender.token if sender else settings.WHATSAPP_TOKEN,
        phone_number_id=sender.phone_number_id if sender else settings.WHATSAPP_PHONE_NUMBER_ID,
        timeout=settings.WHATSAPP_TIMEOUT,
        attempts=settings.WHATSAPP_SEND_ATTEMPTS,
        backoff=settings.WHATSAPP_RETRY_BACKOFF,
        upload_timeout=settings.WHATSAPP_UPLOAD_TIMEOUT,
    )
