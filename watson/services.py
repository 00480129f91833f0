"""Watson sessions: the row is the truth, the cache a copy, the client the only HTTP.

Called by the room's turn while it holds the room's turn lock, so a room never gets two
sessions even when a burst of its messages is processed by several workers.
"""

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from chatbridge.cache import cache_get, cache_set, watson_session_cache_key, watson_session_ttl
from chatbridge.metrics import TURN_STAGE, WATSON_CALLS, timed
from watson.client import WatsonSessionExpired, watson_client
from watson.models import WatsonSession

logger = logging.getLogger("chatbridge.watson")

# A session this close to its inactivity timeout is treated as gone: better a new session than
# a turn that races Watson's own expiry.
EXPIRY_MARGIN = dt.timedelta(seconds=30)


def watson_reply(
    *,
    room_id: int,
    text: str,
    user_id: str,
    touch: bool = True,
    assistant: tuple[str, str] | None = None,
) -> dict[str, Any]:
    """The assistant's `output` for one customer message. An expired session is replaced and the
    message sent once more; any other failure raises (a VendorError). `touch=False`: the caller
    moves the session's expiry itself (with its own statements). `assistant`: the (assistant,
    environment) ids of the room's business number, if not WATSON_ASSISTANT_ID's."""
    client = watson_client(assistant)
    with timed(TURN_STAGE, "cache"):
        session_id = watson_session_get_or_create(room_id=room_id, assistant=assistant)
    try:
        with timed(TURN_STAGE, "watson"):
            try:
                output = client.message_send(session_id=session_id, text=text, user_id=user_id)
            except WatsonSessionExpired:
                WATSON_CALLS.labels(result="expired").inc()
                logger.info("watson session of room %s expired; replacing it", room_id)
                session_id = watson_session_replace(room_id=room_id, assistant=assistant)
                output = client.message_send(session_id=session_id, text=text, user_id=user_id)
    except Exception:
        WATSON_CALLS.labels(result="error").inc()
        raise
    WATSON_CALLS.labels(result="ok").inc()
    if touch:
        watson_session_touch(room_id=room_id)
    return output


def watson_session_get_or_create(*, room_id: int, assistant: tuple[str, str] | None = None) -> str:
    now = timezone.now()
    key = watson_session_cache_key(room_id=room_id)
    cached = cache_get(key)
    if isinstance(cached, dict) and cached.get("expires_at", 0) > (now + EXPIRY_MARGIN).timestamp():
        return str(cached["session_id"])
    session = WatsonSession.objects.filter(room_id=room_id).first()
    if session is None or session.expires_at <= now + EXPIRY_MARGIN:
        return watson_session_replace(room_id=room_id, assistant=assistant)
    _cache(session)
    return session.session_id


def watson_session_replace(*, room_id: int, assistant: tuple[str, str] | None = None) -> str:
    """Create a session at Watson and make it the room's (one row per room, updated in place)."""
    session_id = watson_client(assistant).session_create()
    now = timezone.now()
    session, _ = WatsonSession.objects.update_or_create(
        room_id=room_id,
        defaults={
            "session_id": session_id,
            "last_used_at": now,
            "expires_at": now + dt.timedelta(seconds=settings.WATSON_SESSION_TIMEOUT),
        },
    )  # the save flushes the old cached id
    _cache(session)
    return session_id


def watson_session_touch(*, room_id: int) -> None:
    """Watson's timeout counts from the last message: move the row's expiry along. The cached
    copy keeps its older expiry; when that runs out the next turn re-reads the row. (The bot's
    one-round-trip reply sends the same UPDATE with its own: rooms/bot/statements.py.)"""
    now = timezone.now()
    WatsonSession.objects.filter(room_id=room_id).update(
        last_used_at=now, expires_at=now + dt.timedelta(seconds=settings.WATSON_SESSION_TIMEOUT)
    )


def _cache(session: WatsonSession) -> None:
    value = {"session_id": session.session_id, "expires_at": session.expires_at.timestamp()}
    cache_set(watson_session_cache_key(room_id=session.room_id), value, ttl=watson_session_ttl())
