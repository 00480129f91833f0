"""Structured logs: one JSON object a line, each with the request or task id and the room id.

Who logs binds what it knows (`log_bind(room_id=...)`) into a context variable; the formatter
adds it to every line of that request or task. Phone numbers never reach the logs whole (see
users.models.mask_uid) and message text is never logged at INFO.
"""

import contextvars
import datetime as dt
import json
import logging
import re
import uuid
from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

# Never mutated in place: each bind sets a new dict, so the empty default is safe to share.
_context: contextvars.ContextVar[dict[str, Any]] = contextvars.ContextVar("log_context")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def log_bind(**values: Any) -> None:
    """Add fields to every later log line of the current request or task."""
    _context.set({**_context.get({}), **values})


def log_reset(**values: Any) -> None:
    _context.set(dict(values))


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context.get({}),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class RequestIdMiddleware:
    """A request id per request (the proxy's X-Request-ID when it sends a sane one), in every
    log line of the request and echoed in the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        log_reset(request_id=request_id)
        response = self.get_response(request)
        response.headers["X-Request-ID"] = request_id
        return response
