"""WhatsApp Cloud API notifications as Meta sends them, Twilio's forms, and their signatures.

The shapes follow tests/fixtures/whatsapp/*.json (captured from Meta's reference); builders
exist so a test can say "a text from this customer" in one line.
"""

import hashlib
import hmac
import json
import struct
import time
import uuid
import zlib
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from django.conf import settings

from chatbridge.fakes.twilio import sign as twilio_sign

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str, *, fresh: bool = True) -> dict[str, Any]:
    """A captured payload; `fresh` dates its messages now (old ones are handed to agents)."""
    data = json.loads((FIXTURES / name).read_text())
    if fresh:
        for entry in data.get("entry", []):
            for change in entry.get("changes", []):
                for item in change.get("value", {}).get("messages", []):
                    item["timestamp"] = str(int(time.time()))
    return data


def sign(body: bytes, secret: str | None = None) -> str:
    key = (secret or settings.WHATSAPP_APP_SECRET).encode()
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def signed_post(client: Any, payload: dict | bytes, **headers: str) -> Any:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers.setdefault("HTTP_X_HUB_SIGNATURE_256", sign(body))
    return client.post("/whatsapp/external", data=body, content_type="application/json", **headers)


def new_wamid() -> str:
    return f"wamid.test-{uuid.uuid4().hex}"


def message(
    wa_id: str,
    text: str = "hola",
    *,
    wamid: str | None = None,
    kind: str = "text",
    body: dict[str, Any] | None = None,
    timestamp: int | None = None,
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "from": wa_id,
        "id": wamid or new_wamid(),
        "timestamp": str(timestamp or int(time.time())),
        "type": kind,
    }
    item[kind] = body if body is not None else {"body": text}
    return item


def interactive_reply(wa_id: str, title: str, reply_id: str = "opt1:x") -> dict[str, Any]:
    body = {"type": "button_reply", "button_reply": {"id": reply_id, "title": title}}
    return message(wa_id, kind="interactive", body=body)


def status(wamid: str, name: str, *, error_code: int | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": wamid,
        "status": name,
        "timestamp": str(int(time.time())),
        "recipient_id": "573000000000",
    }
    if error_code is not None:
        item["errors"] = [
            {
                "code": error_code,
                "title": "Re-engagement message",
                "message": "Re-engagement message",
                "error_data": {"details": "More than 24 hours have passed"},
            }
        ]
    return item


def notification(
    *,
    messages: list[dict[str, Any]] = (),
    statuses: list[dict[str, Any]] = (),
    names: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One entry, one change; contacts for every sender of `messages`."""
    senders = {item["from"] for item in messages if "from" in item}
    value: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": "15550000000",
            "phone_number_id": settings.WHATSAPP_PHONE_NUMBER_ID,
        },
    }
    if senders:
        value["contacts"] = [
            {"profile": {"name": (names or {}).get(wa_id, f"Cliente {wa_id[-4:]}")}, "wa_id": wa_id}
            for wa_id in sorted(senders)
        ]
    if messages:
        value["messages"] = list(messages)
    if statuses:
        value["statuses"] = list(statuses)
    return {
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": value}]}],
    }


def text_from(wa_id: str, text: str = "hola", **kwargs: Any) -> dict[str, Any]:
    return notification(messages=[message(wa_id, text, **kwargs)])


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, written out by hand (no imaging library in the project)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        body = tag + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


# --- Twilio ---------------------------------------------------------------------------------------


def twilio_post(
    client: Any,
    form: dict[str, str],
    *,
    path: str = "/twilio/whatsapp",
    signed_url: str | None = None,
    token: str | None = None,
    **headers: str,
) -> Any:
    """POST a Twilio form to chatbridge, signed as Twilio signs it: over the public URL
    (TWILIO_WEBHOOK_BASE_URL and the path, query included) unless `signed_url` says otherwise."""
    url = signed_url or settings.TWILIO_WEBHOOK_BASE_URL + path
    signature = twilio_sign(token or settings.TWILIO_AUTH_TOKEN, url, form)
    headers.setdefault("HTTP_X_TWILIO_SIGNATURE", signature)
    body = urlencode(form)
    return client.post(path, data=body, content_type="application/x-www-form-urlencoded", **headers)


def twilio_status(sid: str, status: str, *, error_code: int | None = None) -> dict[str, str]:
    """A status callback's form, as Twilio posts it for a WhatsApp message."""
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "MessageStatus": status,
        "SmsStatus": status,
        "AccountSid": settings.TWILIO_ACCOUNT_SID,
        "From": settings.TWILIO_WHATSAPP_FROM,
        "To": "whatsapp:+573000000000",
        "ApiVersion": "2010-04-01",
    }
    if error_code is not None:
        form["ErrorCode"] = str(error_code)
    return form
