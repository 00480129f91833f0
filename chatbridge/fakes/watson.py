"""Fake IBM Watson Assistant v2 (the subset chatbridge uses, as called by ibm-watson 11.x).

The dialog is scripted on the user's text so tests can reach every response type the bridge
has to translate to WhatsApp (text, button/list/too-many options, pauses, agent handoff).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, ClassVar

from chatbridge.fakes.base import (
    ControlError,
    FakeServer,
    JSONDict,
    Request,
    Response,
    control_number,
)

GREETING_TEXTS = [
    "¡Hola! Soy el asistente virtual de chatbridge.",
    "¿En qué te puedo ayudar?",
]
HANDOFF_TEXT = "Te comunico con un asesor."
HANDOFF_TO_AGENT = "El cliente pidió hablar con un asesor."
AGENT_AVAILABLE = "Un asesor te atenderá en breve."
AGENT_UNAVAILABLE = (
    "En este momento no hay asesores disponibles; te atenderemos apenas se conecte uno."
)

# Three options fit WhatsApp reply buttons; six need a list; twelve exceed a list's 10 rows.
MENU_LABELS = ["Saldo", "Tarjetas", "Créditos"]
# Kept within WhatsApp's 24-character row-title limit; the last one sits exactly on it.
LIST_LABELS = [
    "Cuenta de ahorros",
    "Cuenta corriente",
    "Tarjeta de crédito",
    "Crédito hipotecario",
    "Crédito de vehículo",
    "Cuenta de ahorro juvenil",
]
MANY_LABELS = [f"Opción {n}" for n in range(1, 13)]

GREETING_WORDS = frozenset({"hola", "hi", "hello", "buenas", "buenos dias", "buenos días"})
MENU_WORDS = frozenset({"opciones", "options", "menu", "menú"})
LIST_WORDS = frozenset({"lista", "list"})
MANY_WORDS = frozenset({"muchas", "many"})
PAUSE_WORDS = frozenset({"pausa", "pause"})
# One keyword for each response type of Assistant v2 that the script does not use otherwise
# (README, "Trying it"): what each makes the assistant answer.
MEDIA_BASE = "https://assets.example.com/chatbridge"
EVERY_TYPE: dict[str, list[JSONDict]] = {
    "imagen": [
        {"response_type": "image", "source": f"{MEDIA_BASE}/tarjeta.png", "title": "Tu tarjeta"}
    ],
    "video": [{"response_type": "video", "source": f"{MEDIA_BASE}/app.mp4", "title": "La app"}],
    "audio": [{"response_type": "audio", "source": f"{MEDIA_BASE}/bienvenida.ogg"}],
    "iframe": [
        {"response_type": "iframe", "source": f"{MEDIA_BASE}/simulador", "title": "Simulador"}
    ],
    "buscar": [
        {
            "response_type": "search",
            "header": "Encontré esto:",
            "primary_results": [
                {
                    "title": "Bloquear tu tarjeta",
                    "body": "Desde la app, en <em>Tarjetas</em>, toca Bloquear.",
                    "url": f"{MEDIA_BASE}/ayuda/bloqueo",
                }
            ],
            "additional_results": [
                {"title": "Reponer tu tarjeta", "body": "Pide una nueva en la app.", "url": ""}
            ],
        }
    ],
    "canal": [
        {
            "response_type": "channel_transfer",
            "message_to_user": "Sigamos en la web:",
            "transfer_info": {"target": {"chat": {"url": f"{MEDIA_BASE}/chat"}}},
        }
    ],
    "sugerencias": [
        {
            "response_type": "suggestion",
            "title": "¿Quisiste decir?",
            "suggestions": [
                {"label": "Saldo", "value": {"input": {"text": "saldo"}}},
                {"label": "Tarjetas", "value": {"input": {"text": "tarjetas"}}},
            ],
        }
    ],
    "personalizado": [{"response_type": "user_defined", "user_defined": {"card": "x"}}],
    "desconocido": [{"response_type": "carousel", "items": []}],
    "silencio": [{"response_type": "pause", "time": 500, "typing": True}],
    "nada": [],
}
HANDOFF_MARKERS = ("agent", "agente", "asesor", "human")


def _text(text: str) -> JSONDict:
    return {"response_type": "text", "text": text}


def _options(title: str, labels: list[str], preference: str | None = None) -> JSONDict:
    item: JSONDict = {
        "response_type": "option",
        "title": title,
        "description": "",
        "options": [
            {"label": label, "value": {"input": {"text": label.lower()}}} for label in labels
        ],
    }
    if preference is not None:
        item["preference"] = preference
    return item


def script_reply(text: str) -> tuple[str, list[JSONDict]]:
    """Return ``(intent, generic items)`` for a user utterance."""
    # Users type "Hola!" or "¿menú?"; surrounding punctuation should not defeat the script.
    key = text.strip().lower().strip("¡!¿?.,; ")
    if key in GREETING_WORDS:
        return "greeting", [_text(t) for t in GREETING_TEXTS]
    if key in MENU_WORDS:
        return "options", [
            _text("Estas son las opciones:"),
            _options("Elige una opción", MENU_LABELS, "button"),
        ]
    if key in LIST_WORDS:
        return "options", [_options("Elige un producto", LIST_LABELS, "dropdown")]
    if key in MANY_WORDS:
        return "options", [_options("Elige una opción", MANY_LABELS)]
    if key in EVERY_TYPE:
        return key, EVERY_TYPE[key]
    if key in PAUSE_WORDS:
        return "pause", [
            _text("Déjame revisar…"),
            {"response_type": "pause", "time": 500, "typing": True},
            _text("Listo, ya lo revisé."),
        ]
    if any(marker in key for marker in HANDOFF_MARKERS):
        # "... nivel 2 ...": the hand-off names chatbridge's area `level-2` (README, "Areas").
        target = {"chatbridge": {"area": "level-2"}} if "nivel 2" in key else {}
        return "handoff", [
            _text(HANDOFF_TEXT),
            {
                "response_type": "connect_to_agent",
                "message_to_human_agent": HANDOFF_TO_AGENT,
                "agent_available": {"message": AGENT_AVAILABLE},
                "agent_unavailable": {"message": AGENT_UNAVAILABLE},
                "transfer_info": {"target": target},
            },
        ]
    return "echo", [_text(f"Dijiste: {text}")]


def _error(status: int, message: str) -> Response:
    return Response(status, {"error": message, "code": status})


def _route(path: str) -> tuple[str, str | None] | None:
    """Map a /v2/... path to ``(operation, session_id)``.

    Accepts both the environment-scoped paths of SDK 11 and the older assistant-only ones,
    and ignores any prefix before ``/v2/`` (instance URLs carry one).
    """
    index = path.find("/v2/")
    if index < 0:
        return None
    parts = [p for p in path[index + 1 :].split("/") if p]
    if len(parts) < 3 or parts[:2] != ["v2", "assistants"]:
        return None
    rest = parts[3:]
    if len(rest) >= 2 and rest[0] == "environments":
        rest = rest[2:]
    if rest == ["sessions"]:
        return "create", None
    if len(rest) == 2 and rest[0] == "sessions":
        return "delete", rest[1]
    if len(rest) == 3 and rest[0] == "sessions" and rest[2] == "message":
        return "message", rest[1]
    return None


class FakeWatson(FakeServer):
    """Fake Watson Assistant v2 with sessions that expire after an idle timeout."""

    control_keys: ClassVar[frozenset[str]] = frozenset({"session_idle_timeout", "expire_sessions"})

    def __init__(
        self,
        port: int = 0,
        session_idle_timeout: float = 300.0,
        expected_version: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.session_idle_timeout = session_idle_timeout
        self.expected_version = expected_version
        super().__init__(port=port, host=host)

    def _reset_state(self) -> None:
        # session_id -> time.monotonic() of the last create/message (the idle clock).
        self.sessions: dict[str, float] = {}
        self._turns: dict[str, int] = {}
        self.sessions_created = 0
        self.message_calls = 0

    # -- scripting helpers ---------------------------------------------------------------

    def expire_all_sessions(self) -> None:
        with self.lock:
            self.sessions.clear()

    def expire_session(self, session_id: str) -> None:
        with self.lock:
            self.sessions.pop(session_id, None)

    def wait_for_messages(self, n: int, timeout: float = 5.0) -> int:
        """Block until at least ``n`` message calls arrived; return the count."""
        self.wait_until(lambda: self.message_calls >= n, timeout, f"{n} Watson message calls")
        return self.message_calls

    def _apply_control(self, data: JSONDict) -> None:
        if "session_idle_timeout" in data:
            self.session_idle_timeout = control_number(data, "session_idle_timeout")
        if "expire_sessions" in data:
            if not isinstance(data["expire_sessions"], bool):
                raise ControlError("expire_sessions must be a boolean")
            if data["expire_sessions"]:
                self.expire_all_sessions()

    # -- vendor API ----------------------------------------------------------------------

    def on_arrival(self, request: Request) -> None:
        # Counted on arrival, like `requests`, so a test can see a call that is still
        # inside a delay (or that failed) and wait_for_messages() can wait for it.
        route = _route(request.path)
        if route is not None and route[0] == "message" and request.method == "POST":
            self.message_calls += 1

    def handle_vendor(self, request: Request) -> Response:
        route = _route(request.path)
        if route is None:
            return _error(404, "Resource not found")
        version = request.query.get("version")
        if not version:
            return _error(400, "Missing required query parameter 'version'")
        if self.expected_version is not None and version != self.expected_version:
            return _error(400, f"Invalid value for 'version': {version}")
        operation, session_id = route
        if operation == "create" and request.method == "POST":
            return self._create_session()
        if operation == "delete" and request.method == "DELETE" and session_id:
            # Idempotent on purpose: clients delete sessions that may already have expired.
            self.expire_session(session_id)
            return Response(200, {})
        if operation == "message" and request.method == "POST" and session_id:
            return self._message(session_id, request.json)
        return _error(405, "Method not allowed")

    def _create_session(self) -> Response:
        session_id = str(uuid.uuid4())
        with self.lock:
            self.sessions[session_id] = time.monotonic()
            self._turns[session_id] = 0
            self.sessions_created += 1
        return Response(201, {"session_id": session_id})

    def _message(self, session_id: str, body: Any) -> Response:
        if body is not None and not isinstance(body, dict):
            return _error(400, "Invalid request body")
        body = body or {}
        message_input = body.get("input") or {}
        context = body.get("context") or {}
        if not isinstance(message_input, dict) or not isinstance(context, dict):
            return _error(400, "Invalid request body")

        now = time.monotonic()
        with self.lock:
            last_seen = self.sessions.get(session_id)
            if last_seen is None or now - last_seen > self.session_idle_timeout:
                self.sessions.pop(session_id, None)
                return _error(404, "Invalid Session")
            self.sessions[session_id] = now
            turn = self._turns.get(session_id, 0) + 1
            self._turns[session_id] = turn

        text = str(message_input.get("text") or "")
        intent, generic = script_reply(text)
        system = (context.get("global") or {}).get("system") or {}
        # Same precedence as Watson: root user_id, then the context one, then the session.
        user_id = body.get("user_id") or system.get("user_id") or session_id
        result: JSONDict = {
            "output": {
                "generic": generic,
                "intents": [{"intent": intent, "confidence": 0.99}],
                "entities": [],
            },
            "user_id": user_id,
        }
        options = message_input.get("options") or {}
        if isinstance(options, dict) and options.get("return_context"):
            result["context"] = {
                "global": {
                    "system": {**system, "user_id": user_id, "turn_count": turn},
                    "session_id": session_id,
                },
                # Skill variables round-trip so callers can rely on stored state.
                "skills": context.get("skills") or {},
            }
        return Response(200, result)
