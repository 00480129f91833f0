"""The business's WhatsApp numbers ("lines"): the main one (WHATSAPP_PHONE_NUMBER_ID, its token
and app secret, WATSON_ASSISTANT_ID) and those operators register in the admin
(rooms.WhatsAppNumber), each with its default area and Watson assistant.

A room remembers the line its customer wrote to (Room.line: the phone number id, "" for the
main number and for Twilio), and everything it sends goes out from that line. The registry is
one cache entry, read once per webhook POST and flushed on every change (rooms/signals.py);
tokens and secrets are read from the environment variables a number names, never stored in the
database or the cache.
"""

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from chatbridge.cache import LINES_TTL, cache_get, cache_set, lines_cache_key
from rooms.models import WhatsAppNumber
from rooms.whatsapp.client import Sender

logger = logging.getLogger("chatbridge.lines")

_FIELDS = (
    "phone_number_id",
    "name",
    "token_env",
    "app_secret_env",
    "area_id",
    "watson_assistant_id",
    "watson_environment_id",
)


@dataclass(frozen=True)
class Line:
    key: str  # what Room.line holds: "" for the main number
    phone_number_id: str
    name: str
    token: str = field(repr=False)
    app_secret: str = field(repr=False)
    area_id: int | None = None
    assistant_id: str = ""
    environment_id: str = ""

    @property
    def sender(self) -> Sender | None:
        """Who sends for it (None: the main number's client, from the settings)."""
        if not self.key:
            return None
        return Sender(phone_number_id=self.phone_number_id, token=self.token)

    @property
    def assistant(self) -> tuple[str, str]:
        return (
            self.assistant_id or settings.WATSON_ASSISTANT_ID,
            self.environment_id or settings.WATSON_ENVIRONMENT_ID,
        )


def line_key(phone_number_id: str) -> str:
    """Room.line for a message to `phone_number_id`: "" for the main number (or none named)."""
    main = settings.WHATSAPP_PHONE_NUMBER_ID
    return "" if phone_number_id in ("", main) else phone_number_id


def lines() -> dict[str, Line]:
    """Every line served now, by Room.line: the main number always, the active registered ones
    (one of them may be the main number, to give it an area or an assistant)."""
    rows = cache_get(lines_cache_key())
    if not isinstance(rows, list):
        rows = list(WhatsAppNumber.objects.filter(active=True).values(*_FIELDS))
        cache_set(lines_cache_key(), rows, ttl=LINES_TTL)
    served = {"": _main()}
    for row in rows:
        line = _registered(row)
        served[line.key] = line
    return served


class ServedLines:
    """The lines one webhook POST may need: the registry is read (one cache round trip) only if
    the POST is signed by another app or names another number than the main one, so the main
    number's traffic pays nothing for the others."""

    def __init__(self) -> None:
        self._registry: dict[str, Line] | None = None

    def get(self, key: str) -> Line | None:
        """The line a message to Room.line `key` is answered from; None if not served. The main
        number's credentials are the settings', registered or not."""
        return _main() if not key else self._lines().get(key)

    def other_secrets(self) -> list[str]:
        """The app secrets of the registered numbers besides the main one's."""
        main = settings.WHATSAPP_APP_SECRET
        found = {line.app_secret for line in self._lines().values() if line.app_secret}
        return sorted(found - {main})

    def _lines(self) -> dict[str, Line]:
        if self._registry is None:
            self._registry = lines()
        return self._registry


def line_of(key: str) -> Line:
    """The line of a room (Room.line). A number no longer served still answers its open rooms
    with its own token, if the environment has it; the main number otherwise."""
    served = lines().get(key)
    if served is not None:
        return served
    row = WhatsAppNumber.objects.filter(phone_number_id=key).values(*_FIELDS).first()
    return _registered(row) if row else _main()


def _main() -> Line:
    return Line(
        key="",
        phone_number_id=settings.WHATSAPP_PHONE_NUMBER_ID,
        name="",
        token=settings.WHATSAPP_TOKEN,
        app_secret=settings.WHATSAPP_APP_SECRET,
    )


# Numbers whose missing variables this process has logged (once each, not on every POST).
_missing_logged: set[str] = set()


def _registered(row: dict[str, Any]) -> Line:
    key = line_key(row["phone_number_id"])
    if key:
        token = os.environ.get(row["token_env"], "")
        secret = os.environ.get(row["app_secret_env"], "")
    else:  # the main number registered for its area or assistant: its settings' credentials
        token, secret = settings.WHATSAPP_TOKEN, settings.WHATSAPP_APP_SECRET
    if (not token or not secret) and key not in _missing_logged:
        _missing_logged.add(key)
        logger.error(
            "WhatsApp number %s: %s or %s is not set in the environment: its messages are "
            "flagged, not answered",
            row["name"],
            row["token_env"],
            row["app_secret_env"],
        )
    return Line(
        key=key,
        phone_number_id=row["phone_number_id"],
        name=row["name"],
        token=token,
        app_secret=secret,
        area_id=row["area_id"],
        assistant_id=row["watson_assistant_id"],
        environment_id=row["watson_environment_id"],
    )


def line_sender(key: str) -> Sender | None:
    """Who sends for a room's line: None for the main number (the settings' client, no lookup
    on the common path)."""
    return line_of(key).sender if key else None


def line_area_id(key: str) -> int | None:
    """The area a line's hand-offs enter when Watson names none (None: the default area)."""
    return line_of(key).area_id
