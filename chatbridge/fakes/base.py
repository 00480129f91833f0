"""Shared machinery for the fake vendor HTTP servers.

Each fake is a real HTTP server on 127.0.0.1 so the code under test talks to it exactly as
it would talk to the vendor (same SDK, same ``requests`` calls, same timeouts). Subclasses
only implement the vendor routes; recording, latency, scripted failures and the ``/_fake/*``
control endpoints live here so both fakes behave identically when driven from another
process.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

JSONDict = dict[str, Any]

CONTROL_PREFIX = "/_fake/"


@dataclass
class Request:
    """One incoming HTTP request, already decoded."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    raw: bytes = b""

    def record(self) -> JSONDict:
        return {
            "method": self.method,
            "path": self.path,
            "query": dict(self.query),
            "headers": dict(self.headers),
            "json": self.json,
            "at": time.time(),
        }


@dataclass
class Response:
    status: int
    body: Any = field(default_factory=dict)
    # Bytes sent as they are (a file) instead of `body` as JSON, and headers of their own
    # (Content-Type, Location).
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class ControlError(ValueError):
    """A malformed ``/_fake/control`` payload; answered with 400 so typos fail loudly."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fake: FakeServer) -> None:
        self.fake = fake
        super().__init__(address, _KeepAliveHandler if fake.keep_alive else _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out on a delayed answer hang up before we write; that is an
        # expected outcome of latency tests, not something worth a traceback on stderr.
        return


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0 closes the connection after every answer, so stop() never waits on idle
    # keep-alive sockets and every request gets a fresh handler thread.
    protocol_version = "HTTP/1.0"
    server_version = "chatbridge-fake/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        request = Request(
            method=self.command,
            path=split.path,
            query={k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()},
            headers={k.lower(): v for k, v in self.headers.items()},
            json=parsed,
            raw=raw,
        )
        response = self.server.fake._handle(request)
        payload = response.content
        if payload is None:
            payload = json.dumps(response.body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json; charset=utf-8", **response.headers}
        self.send_response(response.status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch


class _KeepAliveHandler(_Handler):
    """HTTP/1.1 with persistent connections, as the real vendors answer: for the benchmark, where
    a new TCP connection per call would charge chatbridge for the fake's manners."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without TCP_NODELAY the body waits for the
    # client's delayed ACK (40 ms) on every kept-alive answer.
    disable_nagle_algorithm = True


class FakeServer:
    """Base class: a threaded HTTP server plus recording, latency and failure scripting.

    Subclasses implement :meth:`handle_vendor` and may extend :meth:`_reset_state`,
    :meth:`on_arrival`, :meth:`_apply_control`, :meth:`_control_fail`,
    :meth:`handle_control_get` and :meth:`default_failure_body`.
    """

    #: Extra keys a subclass accepts on ``POST /_fake/control``.
    control_keys: ClassVar[frozenset[str]] = frozenset()
    _base_control_keys: ClassVar[frozenset[str]] = frozenset({"delay_ms", "fail", "reset"})

    #: Persistent HTTP/1.1 connections instead of one per request; set before start().
    keep_alive: bool = False

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        # Re-entrant so subclass helpers can call each other while holding it.
        self.lock = threading.RLock()
        self.delay: float = 0.0
        self.requests: list[JSONDict] = []
        self._failures: deque[Response] = deque()
        # Vendor calls being answered now, and the most there have been at once since the last
        # reset: how a test sees that calls overlap, whatever the machine's speed.
        self.in_flight = 0
        self.max_in_flight = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        # Bumped by reset(); lets calls that were delayed across a reset notice it.
        self._generation = 0
        self._reset_state()

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        # A wildcard bind is not a connectable address; hand out loopback instead.
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self._server.server_address[1]}"

    def start(self) -> Self:
        if self._server is None:
            self._server = _Server((self.host, self.port), self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                # A short poll keeps stop() quick; shutdown() waits for the next poll tick.
                kwargs={"poll_interval": 0.05},
                name=f"{type(self).__name__}-{self._server.server_address[1]}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def reset(self) -> None:
        """Forget everything (recorded calls, failures, delay, vendor state)."""
        with self.lock:
            self._generation += 1
            self.delay = 0.0
            self.requests.clear()
            self._failures.clear()
            self.max_in_flight = self.in_flight
            self._reset_state()

    # -- scripting -----------------------------------------------------------------------

    def fail_next(self, status: int, body: JSONDict | None = None, count: int = 1) -> None:
        """Answer the next ``count`` vendor calls with ``status`` and ``body``."""
        if body is None:
            body = self.default_failure_body(status)
        with self.lock:
            self._failures.extend(Response(status, body) for _ in range(count))

    # -- subclass hooks ------------------------------------------------------------------

    def _reset_state(self) -> None:
        """Initialise/clear vendor-specific state. Called from __init__ and reset()."""

    def on_arrival(self, request: Request) -> None:
        """Count/observe a vendor call as it arrives, before delay and failures (lock held)."""

    def handle_vendor(self, request: Request) -> Response:
        """Answer a vendor call (lock held; must not block)."""
        raise NotImplementedError

    def handle_control_get(self, request: Request) -> Response | None:
        """Extra GET /_fake/* routes; return None for "not mine"."""
        return None

    def handle_control_post(self, request: Request) -> Response | None:
        """Extra ``POST /_fake/...`` routes of a subclass (None: not one of them)."""
        return None

    def _apply_control(self, data: JSONDict) -> None:
        """Apply fake-specific keys of a /_fake/control payload (lock is held)."""

    def _control_fail(self, spec: JSONDict) -> None:
        status = control_int(spec, "status", required=True)
        body = spec.get("body")
        if body is not None and not isinstance(body, dict):
            raise ControlError("fail.body must be an object")
        self.fail_next(status, body, control_int(spec, "count", default=1))

    def default_failure_body(self, status: int) -> JSONDict:
        return {"error": _phrase(status), "code": status}

    # -- test helpers --------------------------------------------------------------------

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``predicate`` until true; the code under test works on other threads."""
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                if predicate():
                    return
            if time.monotonic() >= deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(0.01)

    # -- request handling ----------------------------------------------------------------

    def _handle(self, request: Request) -> Response:
        if request.path.startswith(CONTROL_PREFIX):
            return self._handle_control(request)
        with self.lock:
            self.requests.append(request.record())
            self.on_arrival(request)
            # Pop at arrival so concurrent calls consume scripted failures in arrival order.
            failure = self._failures.popleft() if self._failures else None
            delay, generation = self.delay, self._generation
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if delay > 0:
                # Sleep outside the lock so other calls (and control requests) are not blocked.
                time.sleep(delay)
        finally:
            with self.lock:
                self.in_flight -= 1
        # Vendor handlers are tiny; running them under the lock makes the staleness check
        # and the state change one atomic step.
        with self.lock:
            if generation != self._generation:
                # The fake was reset while this call slept (its client has usually timed
                # out or died); it must not leak into the state of whatever runs next.
                return Response(503, {"error": "fake was reset during this call", "code": 503})
            if failure is not None:
                return failure
            try:
                return self.handle_vendor(request)
            except Exception as exc:
                # Odd payloads from the code under test should surface as a readable 500 in
                # the test, not as a hung or reset connection.
                return Response(500, {"error": f"fake crashed: {exc!r}", "code": 500})

    def _handle_control(self, request: Request) -> Response:
        path = request.path
        try:
            if request.method == "GET" and path == "/_fake/requests":
                with self.lock:
                    return Response(200, {"requests": list(self.requests)})
            if request.method == "POST" and path == "/_fake/reset":
                self.reset()
                return Response(200, {"ok": True})
            if request.method == "POST" and path == "/_fake/control":
                if request.json is None and request.raw.strip():
                    raise ControlError("control payload is not valid JSON")
                self._control(request.json)
                return Response(200, {"ok": True})
            response = (
                self.handle_control_get(request)
                if request.method == "GET"
                else self.handle_control_post(request)
            )
            if response is not None:
                return response
        except ControlError as exc:
            return Response(400, {"ok": False, "error": str(exc)})
        return Response(404, {"ok": False, "error": f"unknown control route {path}"})

    def _control(self, data: Any) -> None:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ControlError("control payload must be a JSON object")
        unknown = set(data) - self._base_control_keys - self.control_keys
        if unknown:
            raise ControlError(f"unknown control keys: {sorted(unknown)}")
        with self.lock:
            # Reset first so a single call can mean "start clean, then script this".
            if data.get("reset"):
                self.reset()
            if "delay_ms" in data:
                self.delay = control_number(data, "delay_ms") / 1000.0
            if "fail" in data:
                if not isinstance(data["fail"], dict):
                    raise ControlError("fail must be an object")
                self._control_fail(data["fail"])
            self._apply_control(data)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def sent_listing(request: Request, sent: list[JSONDict]) -> Response:
    """``GET /_fake/messages?to=…&after=…``: the messages a fake recorded as sent (each with its
    `seq` and `to`), after `after`, to `to` when given. The caller holds the fake's lock."""
    to = request.query.get("to") or None
    try:
        after = int(request.query.get("after") or 0)
    except ValueError:
        return Response(400, {"ok": False, "error": "after must be an integer"})
    messages = [m for m in sent if m["seq"] > after and (to is None or m["to"] == to)]
    return Response(200, {"messages": messages})


def control_number(data: JSONDict, key: str) -> float:
    """Read a numeric value from a control payload, rejecting anything else with a 400."""
    value = data[key]
    # bool is an int subclass; reject it so {"count": true} is not silently 1.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ControlError(f"{key} must be a number")
    return float(value)


def control_int(data: JSONDict, key: str, *, default: int = 0, required: bool = False) -> int:
    """Read an optional integer from a control payload."""
    if key not in data:
        if required:
            raise ControlError(f"{key} is required")
        return default
    return int(control_number(data, key))
