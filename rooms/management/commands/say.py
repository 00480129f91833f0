import hashlib
import hmac
import json
import mimetypes
import re
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbridge.fakes.twilio import inbound_form
from chatbridge.fakes.twilio import sign as twilio_sign
from chatbridge.fakes.whatsapp import media_sha256, webhook_notification
from rooms.lines import Line, line_key, lines
from rooms.whatsapp.client import MEDIA_KINDS

# What WhatsApp calls a wa_id: the number in international form, digits only.
WA_ID = re.compile(r"[1-9][0-9]{6,19}")


class Command(BaseCommand):
    help = (
        "Play a customer: post a signed WhatsApp webhook (Meta's, or Twilio's with --provider "
        "twilio) with TEXT from WA_ID to the running chatbridge and print the replies that "
        "reached the fake WhatsApp (or the fake Twilio)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("wa_id", help="the customer's WhatsApp id, digits only")
        parser.add_argument("text")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="chatbridge's address")
        parser.add_argument("--name", default="Cliente de prueba", help="profile name")
        parser.add_argument("--wait", type=float, default=5, help="seconds to wait for replies")
        parser.add_argument("--provider", choices=["whatsapp", "twilio"], default="whatsapp")
        parser.add_argument(
            "--file", type=Path, help="send this file (a photo, a PDF…) with TEXT as its caption"
        )
        parser.add_argument(
            "--number",
            default="",
            help="the business number written to (a registered phone number id; default: the "
            "main one)",
        )

    def handle(
        self,
        *args: object,
        wa_id: str,
        text: str,
        url: str,
        name: str,
        wait: float,
        provider: str,
        file: Path | None = None,
        number: str = "",
        **options: object,
    ) -> None:
        if not WA_ID.fullmatch(wa_id):
            raise CommandError(
                f"{wa_id!r} is not a WhatsApp id: the customer's number in digits, country code "
                "first, no + or spaces (e.g. 573001234567)"
            )
        if (file is not None or number) and provider != "whatsapp":
            raise CommandError(
                "--file and --number play Meta's customer only (--provider whatsapp)"
            )
        line = lines().get(line_key(number))
        if line is None or not line.app_secret:
            raise CommandError(
                f"{number} is not a WhatsApp number chatbridge serves: register it in the admin "
                "(Rooms → WhatsApp numbers), with its variables set"
            )
        api_url = settings.TWILIO_API_URL if provider == "twilio" else settings.WHATSAPP_API_URL
        fake = "{0.scheme}://{0.netloc}".format(urlsplit(api_url))
        try:
            sent = self._sent(fake, wa_id, after=0)
        except requests.RequestException as error:
            raise CommandError(
                f"no fake {provider} at {fake} ({error}); is `make run` up?"
            ) from error
        # What reached this customer since their last `say` (an agent's answer, say) comes first.
        state = f"{provider}-{wa_id}"
        last_shown = _last_shown(state)
        for reply in sent:
            if reply["seq"] > last_shown:
                self.stdout.write(f"chatbridge (earlier)> {reply['text']}")
        last_seq = max((item["seq"] for item in sent), default=0)
        try:
            if provider == "twilio":
                response = _twilio_post(url.rstrip("/"), wa_id=wa_id, name=name, text=text)
            else:
                item = (
                    _text_item(wa_id, text) if file is None else _file_item(fake, wa_id, text, file)
                )
                response = _whatsapp_post(
                    url.rstrip("/"), wa_id=wa_id, name=name, item=item, line=line
                )
        except requests.RequestException as error:
            raise CommandError(f"chatbridge is not answering at {url}: {error}") from error
        if response.status_code != 200:
            raise CommandError(f"webhook answered {response.status_code}: {response.text[:200]}")
        replies = self._wait_for_replies(fake, wa_id, after=last_seq, wait=wait)
        if not replies:
            self.stdout.write(
                "(no reply: the conversation is with the agents, or the bot chose to say nothing)"
            )
        for reply in replies:
            # From which business number, when it is not the main one.
            sender = reply.get("phone_number_id", "")
            origin = f" (from {sender})" if sender and line_key(sender) else ""
            self.stdout.write(f"bot{origin}> {reply['text']}")
        _remember_shown(state, max([last_seq, *(reply["seq"] for reply in replies)]))

    def _sent(self, fake: str, wa_id: str, *, after: int) -> list[dict]:
        response = requests.get(
            f"{fake}/_fake/messages", params={"to": wa_id, "after": str(after)}, timeout=5
        )
        response.raise_for_status()
        return response.json()["messages"]

    def _wait_for_replies(self, fake: str, wa_id: str, *, after: int, wait: float) -> list[dict]:
        """Replies go out right after the turn; wait for the first, then for a short quiet."""
        deadline = time.monotonic() + wait
        replies: list[dict] = []
        quiet_since = None
        while time.monotonic() < deadline:
            new = self._sent(fake, wa_id, after=after)
            if len(new) > len(replies):
                replies, quiet_since = new, time.monotonic()
            elif replies and quiet_since and time.monotonic() - quiet_since > 0.7:
                break
            time.sleep(0.1)
        return replies


def _whatsapp_post(url: str, *, wa_id: str, name: str, item: dict, line: Line) -> requests.Response:
    """Meta's POST for one message to `line`, signed with its app's secret."""
    body = json.dumps(
        _notification(wa_id=wa_id, name=name, item=item, phone_number_id=line.phone_number_id)
    ).encode()
    signature = hmac.new(line.app_secret.encode(), body, hashlib.sha256)
    return requests.post(
        f"{url}/whatsapp/external",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature-256": f"sha256={signature.hexdigest()}",
        },
        timeout=30,
    )


def _twilio_post(url: str, *, wa_id: str, name: str, text: str) -> requests.Response:
    """Twilio's form, signed as Twilio signs it: over the public URL chatbridge is configured
    with (TWILIO_WEBHOOK_BASE_URL), wherever it is posted."""
    form = inbound_form(
        wa_id=wa_id,
        text=text,
        name=name,
        to=settings.TWILIO_WHATSAPP_FROM,
        account_sid=settings.TWILIO_ACCOUNT_SID,
    )
    signed_url = f"{settings.TWILIO_WEBHOOK_BASE_URL}/twilio/whatsapp"
    signature = twilio_sign(settings.TWILIO_AUTH_TOKEN, signed_url, form)
    return requests.post(
        f"{url}/twilio/whatsapp", data=form, headers={"X-Twilio-Signature": signature}, timeout=30
    )


def _notification(*, wa_id: str, name: str, item: dict, phone_number_id: str) -> dict:
    return webhook_notification(
        phone_number_id=phone_number_id,
        contacts=[{"profile": {"name": name}, "wa_id": wa_id}],
        messages=[item],
    )


def _item(wa_id: str, kind: str, body: dict) -> dict:
    return {
        "from": wa_id,
        "id": f"wamid.say-{uuid.uuid4().hex}",
        "timestamp": str(int(time.time())),
        "type": kind,
        kind: body,
    }


def _text_item(wa_id: str, text: str) -> dict:
    return _item(wa_id, "text", {"body": text})


def _file_item(fake: str, wa_id: str, caption: str, path: Path) -> dict:
    """The customer sends a file: it goes to the fake WhatsApp's media store first, as a
    customer's upload goes to Meta's, and the webhook names its media id."""
    try:
        content = path.read_bytes()
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error}") from error
    mime_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    kind = MEDIA_KINDS.get(mime_type, "document")
    response = requests.post(
        f"{fake}/_fake/media",
        params={"mime_type": mime_type, "filename": path.name},
        data=content,
        timeout=10,
    )
    response.raise_for_status()
    body = {"id": response.json()["id"], "mime_type": mime_type, "sha256": media_sha256(content)}
    if kind == "document":
        body["filename"] = path.name
    if caption and kind in ("image", "video", "document"):
        body["caption"] = caption
    return _item(wa_id, kind, body)


def _state_file(state: str) -> Path:
    return Path(settings.BASE_DIR) / "var" / "say" / "".join(c for c in state if c.isalnum())


def _last_shown(state: str) -> int:
    try:
        return int(_state_file(state).read_text())
    except (OSError, ValueError):
        return 1 << 62  # first time: nothing counts as "earlier"


def _remember_shown(state: str, seq: int) -> None:
    path = _state_file(state)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(seq))
