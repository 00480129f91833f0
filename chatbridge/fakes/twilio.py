"""Fake Twilio: the Messages API for WhatsApp, media behind basic auth, signed status callbacks.

``POST /2010-04-01/Accounts/{AccountSid}/Messages.json`` takes a form and answers 201 with the
message's sid, as Twilio does; each message is kept with what its recipient would read, for
``/_fake/messages?to=&after=`` (the same shape as the fake WhatsApp's, so ``make say`` reads
both). With status callbacks on, each message's StatusCallback URL is called back, signed with
the auth token, with queued, sent, delivered and read (or undelivered with an error code, when
scripted), as Twilio reports a WhatsApp message.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs

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

ERROR_MESSAGES: dict[int, str] = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    21211: "Invalid 'To' Phone Number",
    21619: "A text message body or media urls must be specified.",
    63016: (
        "Failed to send freeform message because you are outside the allowed window. "
        "If you are using WhatsApp, please use a Message Template."
    ),
}


def twilio_error(code: int, status: int = 400) -> JSONDict:
    """An error body as the Messages API shapes them."""
    return {
        "code": code,
        "message": ERROR_MESSAGES.get(code, "Error"),
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def sign(auth_token: str, url: str, params: dict[str, str]) -> str:
    """X-Twilio-Signature for a form POST to `url` (written here again, apart from chatbridge's
    check, so that a test of one against the other can fail)."""
    data = url + "".join(f"{name}{params[name]}" for name in sorted(params))
    digest = hmac.new(auth_token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def inbound_form(
    *,
    wa_id: str,
    text: str = "",
    sid: str | None = None,
    name: str = "Cliente de prueba",
    to: str = "whatsapp:+14155238886",
    account_sid: str = "AC00000000000000000000000000000000",
    **extra: str,
) -> dict[str, str]:
    """What Twilio POSTs to the business's webhook when a WhatsApp customer writes."""
    sid = sid or f"SM{uuid.uuid4().hex}"
    return {
        "SmsMessageSid": sid,
        "NumMedia": str(sum(1 for key in extra if key.startswith("MediaUrl"))),
        "ProfileName": name,
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": wa_id,
        "SmsStatus": "received",
        "Body": text,
        "To": to,
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": account_sid,
        "From": f"whatsapp:+{wa_id}",
        "ApiVersion": "2010-04-01",
        **extra,
    }


@dataclass(frozen=True)
class StatusCallbacks:
    """How the fake reports each accepted message's statuses to its StatusCallback URL."""

    delay: float = 0.0  # seconds from the send's answer to `queued`
    read_after: float | None = None  # `read` this long after `delivered` (None: never)
    patience: float = 30.0  # how long a refused callback is tried again


class FakeTwilio(FakeServer):
    """Fake Twilio Messages API with recorded messages, media and status callbacks."""

    control_keys: ClassVar[frozenset[str]] = frozenset({"statuses", "undeliverable"})

    def __init__(
        self,
        port: int = 0,
        *,
        account_sid: str,
        auth_token: str,
        host: str = "127.0.0.1",
        statuses: StatusCallbacks | None = None,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.default_statuses = statuses
        super().__init__(port=port, host=host)

    def _reset_state(self) -> None:
        self.sent: list[JSONDict] = []
        self.statuses = self.default_statuses
        # The next messages whose callbacks end in `undelivered` with these codes (63016: the
        # 24-hour window), as Twilio reports what WhatsApp refused after accepting the send.
        self.undeliverable: list[int] = []
        self.media: dict[str, tuple[bytes, str]] = {}
        # (sid, status, HTTP status of the callback's answer) for every callback made.
        self.callbacks: list[tuple[str, str, int]] = []

    # -- scripting helpers ---------------------------------------------------------------

    def fail_with_code(self, code: int, http_status: int = 400, count: int = 1) -> None:
        """Make the next ``count`` sends fail at once with Twilio's error ``code``."""
        self.fail_next(http_status, twilio_error(code, http_status), count)

    def default_failure_body(self, status: int) -> JSONDict:
        return twilio_error(20500, status)

    def media_add(self, content: bytes, content_type: str) -> str:
        """A file a customer sent: its MediaUrl, as Twilio puts it in the webhook."""
        media_sid = f"ME{uuid.uuid4().hex}"
        with self.lock:
            self.media[media_sid] = (content, content_type)
        message = f"{self.url}/2010-04-01/Accounts/{self.account_sid}/Messages/MM{uuid.uuid4().hex}"
        return f"{message}/Media/{media_sid}"

    def _control_fail(self, spec: JSONDict) -> None:
        if "code" not in spec:
            super()._control_fail(spec)
            return
        self.fail_with_code(
            control_int(spec, "code"),
            http_status=control_int(spec, "http_status", default=400),
            count=control_int(spec, "count", default=1),
        )

    def _apply_control(self, data: JSONDict) -> None:
        if "undeliverable" in data:
            spec = data["undeliverable"]
            if not isinstance(spec, dict):
                raise ControlError("undeliverable must be an object with code and count")
            code = control_int(spec, "code", default=63016)
            self.undeliverable.extend([code] * control_int(spec, "count", default=1))
        if "statuses" in data:
            spec = data["statuses"]
            if spec is not None and not isinstance(spec, dict):
                raise ControlError("statuses must be null or an object")
            self.statuses = None if spec is None else _status_callbacks(spec)

    def sent_to(self, recipient: str) -> list[JSONDict]:
        with self.lock:
            return [m for m in self.sent if m["to"] == recipient]

    def wait_for_sent(self, count: int, timeout: float = 5.0) -> list[JSONDict]:
        self.wait_until(lambda: len(self.sent) >= count, timeout, f"{count} Twilio message(s)")
        with self.lock:
            return list(self.sent)

    def handle_control_get(self, request: Request) -> Response | None:
        if request.path != "/_fake/messages":
            return None
        with self.lock:
            return sent_listing(request, self.sent)

    # -- vendor API ----------------------------------------------------------------------

    def handle_vendor(self, request: Request) -> Response:
        if request.path.startswith("/storage/"):
            return self._storage(request.path.removeprefix("/storage/"))
        parts = [part for part in request.path.split("/") if part]
        if parts[:2] != ["2010-04-01", "Accounts"] or len(parts) < 4:
            return Response(404, twilio_error(20404, 404))
        if not self._authorized(request, parts[2]):
            return Response(401, twilio_error(20003, 401))
        if parts[3:] == ["Messages.json"] and request.method == "POST":
            return self._message_create(request)
        if len(parts) == 7 and parts[3] == "Messages" and parts[5] == "Media":
            return self._media_redirect(parts[6])
        return Response(404, twilio_error(20404, 404))

    def _authorized(self, request: Request, account_sid: str) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        given = request.headers.get("authorization", "")
        return account_sid == self.account_sid and hmac.compare_digest(
            given.encode(), f"Basic {expected}".encode()
        )

    def _message_create(self, request: Request) -> Response:
        form = {key: values[-1] for key, values in parse_qs(request.raw.decode()).items()}
        to, sender = form.get("To", ""), form.get("From", "")
        if not to.startswith("whatsapp:+") or not sender.startswith("whatsapp:"):
            return Response(400, twilio_error(21211))
        if not form.get("Body") and not form.get("MediaUrl"):
            return Response(400, twilio_error(21619))
        sid = f"SM{uuid.uuid4().hex}"
        record = {
            "seq": len(self.sent) + 1,
            "id": sid,
            "to": to.removeprefix("whatsapp:+"),
            "form": form,
            "text": render_text(form),
            "at": time.time(),
        }
        self.sent.append(record)
        error_code = self.undeliverable.pop(0) if self.undeliverable else None
        if self.statuses is not None and form.get("StatusCallback"):
            threading.Thread(
                target=self._report_statuses,
                args=(record, self.statuses, error_code),
                daemon=True,
            ).start()
        return Response(
            201,
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "status": "queued",
                "to": to,
                "from": sender,
                "body": form.get("Body", ""),
                "error_code": None,
            },
        )

    def _media_redirect(self, media_sid: str) -> Response:
        if media_sid not in self.media:
            return Response(404, twilio_error(20404, 404))
        # Twilio answers a media URL with a redirect to its storage, which asks for no credentials.
        return Response(307, {}, headers={"Location": f"{self.url}/storage/{media_sid}"})

    def _storage(self, media_sid: str) -> Response:
        if media_sid not in self.media:
            return Response(404, twilio_error(20404, 404))
        content, content_type = self.media[media_sid]
        return Response(200, content=content, headers={"Content-Type": content_type})

    def _report_statuses(
        self, message: JSONDict, callbacks: StatusCallbacks, error_code: int | None
    ) -> None:
        steps: list[tuple[str, float]] = [("queued", callbacks.delay), ("sent", 0.0)]
        if error_code is not None:
            steps.append(("undelivered", 0.0))
        else:
            steps.append(("delivered", 0.0))
            if callbacks.read_after is not None:
                steps.append(("read", callbacks.read_after))
        for name, pause in steps:
            time.sleep(pause)
            form = {
                "MessageSid": message["id"],
                "SmsSid": message["id"],
                "MessageStatus": name,
                "SmsStatus": name,
                "AccountSid": self.account_sid,
                "From": message["form"]["From"],
                "To": message["form"]["To"],
                "ApiVersion": "2010-04-01",
            }
            if name == "undelivered":
                form["ErrorCode"] = str(error_code)
            answer = self._post_until_accepted(message["form"]["StatusCallback"], form, callbacks)
            with self.lock:
                self.callbacks.append((message["id"], name, answer))

    def _post_until_accepted(
        self, url: str, form: dict[str, str], callbacks: StatusCallbacks
    ) -> int:
        headers = {"X-Twilio-Signature": sign(self.auth_token, url, form)}
        deadline, pause = time.monotonic() + callbacks.patience, 0.2
        while True:
            try:
                answer = requests.post(url, data=form, headers=headers, timeout=10).status_code
            except requests.RequestException:
                answer = 0
            if answer == 200 or time.monotonic() + pause > deadline:
                return answer
            time.sleep(pause)
            pause = min(pause * 2, 5.0)


def render_text(form: dict[str, str]) -> str:
    """What the recipient would read: the body, or the media it carries."""
    body = form.get("Body", "")
    if form.get("MediaUrl"):
        return body or f"[media {form['MediaUrl']}]"
    return body


def _status_callbacks(spec: dict[str, Any]) -> StatusCallbacks:
    return StatusCallbacks(
        delay=control_number(spec, "delay_ms") / 1000.0 if "delay_ms" in spec else 0.0,
        read_after=(
            control_number(spec, "read_after_ms") / 1000.0 if "read_after_ms" in spec else None
        ),
    )
