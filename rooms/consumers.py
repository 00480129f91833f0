"""The agent's websocket: authenticate, map frames to services, forward room events.

The protocol is documented in docs/agent-protocol.md. Database work runs in worker threads that
are not the process-wide "thread-sensitive" one, so a slow command (a WhatsApp send with its
retries) never holds up the other agents on this process.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.db import connections
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from django.utils.translation.trans_real import parse_accept_lang_header
from django_stubs_ext import StrOrPromise

from chatbridge.metrics import AGENTS_CONNECTED
from rooms import realtime
from rooms.conversation.services import room_close
from rooms.desk import selectors
from rooms.desk.assignment import (
    agent_available_set,
    agent_available_set_by,
    agent_gone,
    agent_seen,
    assignment_run,
    room_reassign,
    room_release,
    room_return_to_bot,
    room_take,
    room_transfer,
    room_transfer_to_area,
)
from rooms.desk.selectors import Access, agent_access, agent_profile, closure_reason_get
from rooms.desk.services import (
    agent_message_send,
    agent_note_add,
    agent_template_send,
    customer_read_mark,
)
from rooms.errors import ActionError
from rooms.models import ClosureReason

logger = logging.getLogger("chatbridge.consumers")

# Close codes: 4401 not logged in, 4403 logged in but not an agent.
CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_AN_AGENT = 4403
MAX_FRAME_CHARS = 64 * 1024


def db(function: Callable[..., Any]) -> Callable[..., Coroutine[Any, Any, Any]]:
    """Run ORM work in a worker thread and hand its connection back to the pool afterwards."""

    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        finally:
            connections.close_all()

    return sync_to_async(run, thread_sensitive=False)


class FrameError(ActionError):
    """A frame the protocol does not allow: not JSON, not an object, a field of the wrong type."""


class AgentConsumer(AsyncJsonWebsocketConsumer):
    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Callable[[], Awaitable[dict[str, Any]]],
        send: Callable[[dict[str, Any]], Awaitable[None]],
    ) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also when the consumer is cancelled without a disconnect (the server gives up on it
            # after its close timeout, a test stops it): a heartbeat left running would keep a
            # gone agent online, and the loop it ran on may be closing.
            await self._stop_background_tasks()

    async def dispatch(self, message: dict[str, Any]) -> None:
        # A revoked console is closing: nothing more reaches it or is done for it but its
        # disconnect (frames, events, queue changes, typing).
        if getattr(self, "revoked", False) and message["type"] != "websocket.disconnect":
            return
        await super().dispatch(message)

    async def connect(self) -> None:
        # What the agent reads from us (error messages) is in the console's language.
        self.language = _agent_language(self.scope)
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        session = self.scope.get("session")
        self.session_key: str | None = getattr(session, "session_key", None)
        self.revoked = False
        access = await db(agent_access)(session_key=self.session_key, user_id=user.pk)
        if access.access is not Access.AGENT:
            await self.close(code=_close_code(access.access))
            return
        self.user = user
        self.rooms: dict[int, int] = {}  # room id -> last sequence number sent
        self.read_marked: dict[int, str | None] = {}  # room id -> customer message marked read
        await db(agent_profile)(user)
        await self.channel_layer.group_add(realtime.AGENTS_GROUP, self.channel_name)
        await self.channel_layer.group_add(realtime.agent_group_name(user.pk), self.channel_name)
        snapshot = await db(selectors.agent_snapshot)(user=user)
        # The areas whose queues this console shows (read at connect, like the snapshot; a
        # take is checked against the areas as they are then); a supervisor's, every area.
        self.area_ids = set(snapshot["queue_areas"])
        self.supervisor = snapshot["supervisor"]
        self.watched: set[int] = set()  # rooms a supervisor reads live, not theirs
        if self.supervisor:
            await self.channel_layer.group_add(realtime.SUPERVISORS_GROUP, self.channel_name)
        for room in snapshot["rooms"]:
            await self._join(room["id"], room["seq"])
        await db(agent_seen)(user_id=user.pk)
        await self.send_json({"type": "snapshot", **snapshot})
        AGENTS_CONNECTED.inc()
        self.counted = True
        self.heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
        self.session_expires_at = access.expires_at
        self.watching = asyncio.create_task(self._session_watch(), name="session watch")
        # An agent coming online is a reason to serve the queue.
        self.assigning = asyncio.create_task(db(assignment_run)(), name="assignment")

    async def disconnect(self, code: int) -> None:
        if not hasattr(self, "user"):
            return
        await self._stop_background_tasks()
        if getattr(self, "counted", False):
            AGENTS_CONNECTED.dec()
        groups = [realtime.AGENTS_GROUP, realtime.agent_group_name(self.user.pk)]
        if getattr(self, "supervisor", False):
            groups.append(realtime.SUPERVISORS_GROUP)
        for group in groups + [
            realtime.room_group_name(room) for room in {*self.rooms, *self.watched}
        ]:
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # noqa: BLE001 - the layer may be what failed
                logger.info("could not leave %s", group)
        await db(agent_gone)(user_id=self.user.pk)

    # --- frames from the console ----------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if not hasattr(self, "user"):
            return
        try:
            if text_data is None or len(text_data) > MAX_FRAME_CHARS:
                raise FrameError(
                    "bad_frame",
                    _(
                        "The console sent something the server cannot read (frames are JSON "
                        "text of at most 64 KiB): reload the page."
                    ),
                )
            try:
                content = json.loads(text_data)
            except ValueError as error:
                raise FrameError(
                    "bad_frame", _("The console sent something that is not JSON: reload the page.")
                ) from error
            await self.receive_json(content)
        except FrameError as error:
            await self.send_json({"type": "error", **self._refusal(error)})

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if not isinstance(content, dict):
            raise FrameError(
                "bad_frame", _("The console sent JSON that is not an object: reload the page.")
            )
        kind, request_id = content.get("type"), content.get("id")
        handler = self.commands.get(kind) if isinstance(kind, str) else None
        if handler is None:
            unknown = FrameError(
                "unknown_type",
                _("The server does not know the command %(type)s: reload the page."),
                type=repr(kind),
            )
            await self.send_json({"type": "error", "id": request_id, **self._refusal(unknown)})
            return
        # Every command on the session's word now, not at connect: a revoked agent does nothing.
        if await self._revoked():
            return
        try:
            result = await handler(self, content)
        except ActionError as error:  # a FrameError too
            await self.send_json({"type": "error", "id": request_id, **self._refusal(error)})
        else:
            if kind != "typing":
                await self.send_json(
                    {"type": "ack", "id": request_id, "for": kind, **(result or {})}
                )

    def _refusal(self, error: ActionError) -> dict[str, str]:
        """An error frame's code, and its message in the agent's language."""
        with translation.override(self.language):
            return {"code": error.code, "message": error.message}

    async def take(self, content: dict) -> dict:
        room = await db(room_take)(room_id=_room_id(content), agent=self.user)
        return {"room": room.pk}

    async def send_message(self, content: dict) -> dict:
        text = _text(content, "text", _("The text is missing or is not text."))
        message = await db(agent_message_send)(
            room_id=_room_id(content), agent=self.user, text=text
        )
        return {"room": message.room_id, "message": message.pk}

    async def add_note(self, content: dict) -> dict:
        text = _text(content, "text", _("The text is missing or is not text."))
        note = await db(agent_note_add)(room_id=_room_id(content), agent=self.user, text=text)
        return {"room": note.room_id, "note": note.pk}

    async def send_template(self, content: dict) -> dict:
        template = _whole(content, "template", _("Choose a template from the list."))
        message = await db(agent_template_send)(
            room_id=_room_id(content), agent=self.user, template_id=template
        )
        return {"room": message.room_id, "message": message.pk}

    async def close_room(self, content: dict) -> dict:
        room_id = _room_id(content)
        reason = await db(_closure_reason)(content)
        # An agent closes their own rooms; a supervisor any open one.
        await db(room_close)(
            room_id=room_id,
            by=self.user,
            closure_reason=reason,
            agent_only=not self.supervisor,
            survey=True,
        )
        return {"room": room_id}

    # --- a supervisor's commands: `self.supervisor` is read afresh before each command
    # (_revoked); reassigning and switching an agent are checked again by their services. -----

    async def overview(self, content: dict) -> dict:
        self._supervisor_only()
        return await db(selectors.desk_overview)()

    async def watch(self, content: dict) -> dict:
        """Read an open room live, without taking it: its detail now, its events from then."""
        self._supervisor_only()
        room_id = _room_id(content)
        # One room read at a time; its group joined before its detail is read, so no event
        # falls between the two (the console skips events up to the detail's seq).
        for previous in self.watched - {room_id}:
            await self._unwatch(previous)
        self.watched = {room_id}
        await self.channel_layer.group_add(realtime.room_group_name(room_id), self.channel_name)
        room = await db(selectors.room_detail_open)(room_id=room_id)
        if room is None:
            await self._unwatch(room_id)
            raise ActionError("not_found", _("This conversation is not open."))
        return {"room": room_id, "detail": room}

    async def unwatch(self, content: dict) -> dict:
        room_id = _room_id(content)
        await self._unwatch(room_id)
        return {"room": room_id}

    async def _unwatch(self, room_id: int) -> None:
        """Stop reading a room live (its events still come if it is this agent's own)."""
        self.watched.discard(room_id)
        if room_id not in self.rooms:
            await self.channel_layer.group_discard(
                realtime.room_group_name(room_id), self.channel_name
            )

    async def reassign(self, content: dict) -> dict:
        to_agent = _whole(content, "agent", CHOOSE_AGENT)
        await db(room_reassign)(
            room_id=_room_id(content), supervisor=self.user, to_agent_id=to_agent
        )
        return {"room": _room_id(content), "agent": to_agent}

    async def set_agent_available(self, content: dict) -> dict:
        refusal = _("Name the agent, and whether they are available.")
        agent, value = _whole(content, "agent", refusal), content.get("available")
        if not isinstance(value, bool):
            raise FrameError("invalid", refusal)
        await db(agent_available_set_by)(supervisor=self.user, user_id=agent, available=value)
        return {"agent": agent, "available": value}

    def _supervisor_only(self) -> None:
        if not self.supervisor:
            raise ActionError("not_a_supervisor", _("Only supervisors can do that."))

    async def release(self, content: dict) -> dict:
        await db(room_release)(room_id=_room_id(content), agent=self.user)
        return {"room": _room_id(content)}

    async def transfer(self, content: dict) -> dict:
        to_agent = _whole(content, "agent", CHOOSE_AGENT)
        note = _text(content, "note", NOTE_IS_TEXT, default="")
        await db(room_transfer)(
            room_id=_room_id(content), agent=self.user, to_agent_id=to_agent, note=note
        )
        return {"room": _room_id(content), "agent": to_agent}

    async def agents(self, content: dict) -> dict:
        """The other agents as they are now (load, online): the transfer list, kept live."""
        listed = await db(selectors.agents_list)()
        return {"agents": [vars(agent) for agent in listed]}

    async def transfer_area(self, content: dict) -> dict:
        area = _whole(content, "area", _("Choose the area to transfer the conversation to."))
        note = _text(content, "note", NOTE_IS_TEXT, default="")
        await db(room_transfer_to_area)(
            room_id=_room_id(content), agent=self.user, area_id=area, note=note
        )
        return {"room": _room_id(content), "area": area}

    async def to_bot(self, content: dict) -> dict:
        await db(room_return_to_bot)(room_id=_room_id(content), agent=self.user)
        return {"room": _room_id(content)}

    async def typing(self, content: dict) -> None:
        room_id = _room_id(content)
        if room_id not in self.rooms:
            raise ActionError("not_your_room", _("This conversation is not assigned to you."))
        await self.channel_layer.group_send(
            realtime.room_group_name(room_id),
            {
                "type": "room.typing",
                "room": room_id,
                "agent": self.user.pk,
                "from": self.channel_name,
            },
        )
        # The customer sees their message read and the agent typing (once per message).
        self.read_marked[room_id] = await db(customer_read_mark)(
            room_id=room_id, agent_id=self.user.pk, marked=self.read_marked.get(room_id)
        )

    async def sync(self, content: dict) -> dict:
        """Replay a room's events after the sequence number the console saw last."""
        wanted = content.get("rooms")
        if not isinstance(wanted, dict):
            raise FrameError(
                "invalid",
                _("A sync must give, for each conversation, the number of the last event seen."),
            )
        replayed = 0
        for key, last_seen in wanted.items():
            room_id = _as_id(key)
            if not isinstance(last_seen, int) or isinstance(last_seen, bool) or last_seen < 0:
                raise FrameError("invalid", _("An event number is a whole number, zero or more."))
            if room_id not in self.rooms:
                raise ActionError(
                    "not_your_room",
                    _("Conversation %(room)d is not assigned to you."),
                    room=room_id,
                )
            replayed += await self._replay(room_id, after=last_seen)
        return {"replayed": replayed}

    async def available(self, content: dict) -> dict:
        value = content.get("available")
        if not isinstance(value, bool):
            raise FrameError("invalid", _("Availability must be true or false."))
        await db(agent_available_set)(user_id=self.user.pk, available=value)
        return {"available": value}

    commands = {
        "take": take,
        "send": send_message,
        "template": send_template,
        "note": add_note,
        "close": close_room,
        "release": release,
        "transfer": transfer,
        "transfer_area": transfer_area,
        "overview": overview,
        "watch": watch,
        "unwatch": unwatch,
        "reassign": reassign,
        "agent_available": set_agent_available,
        "to_bot": to_bot,
        "typing": typing,
        "sync": sync,
        "available": available,
        "agents": agents,
    }

    # --- events from the channel layer ----------------------------------------------------------

    async def agent_access(self, message: dict) -> None:
        """Something about this agent's access changed (rooms/signals.py): look again."""
        await self._revoked()

    async def agent_areas(self, message: dict) -> None:
        """An operator changed the areas this agent works (rooms/signals.py): a fresh snapshot,
        with the queues of the areas as they are now."""
        await self._snapshot_again()

    async def room_event(self, message: dict) -> None:
        event = message["event"]
        room_id, kind, data = event["room"], event["kind"], event["data"]
        mine_now = kind == "room.assigned" and data.get("agent") == self.user.pk
        if mine_now and room_id not in self.rooms:
            await self._join(room_id, event["seq"])
            await self.send_json({"type": "event", **event})
            room = await db(selectors.room_detail_for_agent)(room_id=room_id, agent_id=self.user.pk)
            if room is not None:
                await self.send_json({"type": "room", "room": room})
            return
        if room_id not in self.rooms:
            if room_id in self.watched:
                # A room a supervisor reads: every event as it comes, marked so (not theirs).
                await self.send_json({"type": "event", "watched": True, **event})
                if kind == "room.closed":
                    await self._unwatch(room_id)
            return
        last = self.rooms[room_id]
        if event["seq"] <= last:
            return  # already sent (replayed, or came through two groups)
        if event["seq"] > last + 1:
            await self._replay(room_id, after=last, until=event["seq"] - 1)
        self.rooms[room_id] = event["seq"]
        await self.send_json({"type": "event", **event})
        leaves = kind in (
            "room.closed",
            "room.released",
            "room.returned_to_bot",
            "room.area_transferred",
        )
        if leaves or (kind == "room.assigned" and not mine_now):
            await self._leave(room_id)

    async def agent_available(self, message: dict) -> None:
        """A supervisor switched this agent (rooms/desk/assignment.py): the console shows it."""
        await self.send_json(
            {"type": "available", "available": message["available"], "by": message["by"]}
        )

    async def alert_new(self, message: dict) -> None:
        """An alert for supervisors (rooms/desk/alerts.py)."""
        if self.supervisor:
            await self.send_json({"type": "alert", "alert": message["alert"]})

    async def queue_changed(self, message: dict) -> None:
        if message.get("area") in self.area_ids:
            await self.send_json(
                {"type": "queue", "area": message["area"], "queue": message["queue"]}
            )

    async def room_typing(self, message: dict) -> None:
        if message["room"] in self.rooms and message["from"] != self.channel_name:
            await self.send_json(
                {"type": "typing", "room": message["room"], "agent": message["agent"]}
            )

    # --- helpers --------------------------------------------------------------------------------

    async def _join(self, room_id: int, seq: int) -> None:
        self.rooms[room_id] = seq
        await self.channel_layer.group_add(realtime.room_group_name(room_id), self.channel_name)

    async def _leave(self, room_id: int) -> None:
        self.rooms.pop(room_id, None)
        if room_id not in self.watched:  # a supervisor still reading it keeps its events
            await self.channel_layer.group_discard(
                realtime.room_group_name(room_id), self.channel_name
            )

    async def _replay(self, room_id: int, *, after: int, until: int | None = None) -> int:
        events = await db(selectors.room_events_after)(room_id=room_id, after=after, until=until)
        for event in events:
            await self.send_json({"type": "event", **event})
            self.rooms[room_id] = max(self.rooms.get(room_id, 0), event["seq"])
        return len(events)

    async def _stop_background_tasks(self) -> None:
        """Cancel the heartbeat and the assignment run, and wait until they have stopped."""
        current = asyncio.current_task()
        tasks = [getattr(self, name, None) for name in ("heartbeat", "assigning", "watching")]
        started = [task for task in tasks if task is not None and task is not current]
        for task in started:
            task.cancel()
        outcomes = await asyncio.gather(*started, return_exceptions=True)
        for task, outcome in zip(started, outcomes, strict=True):
            if isinstance(outcome, Exception):
                logger.warning("agent %s task failed: %r", task.get_name(), outcome)

    async def _revoked(self) -> bool:
        """Close the socket if its session no longer makes this user an agent (deactivated,
        signed out anywhere that deleted this session, expired, password changed, or removed
        from the agents group). True if it was closed."""
        if self.revoked:
            return True
        access = await db(agent_access)(session_key=self.session_key, user_id=self.user.pk)
        if access.access is Access.AGENT:
            self.session_expires_at = access.expires_at
            if access.supervisor != getattr(self, "supervisor", access.supervisor):
                await self._supervision_changed(access.supervisor)
            return False
        self.revoked = True
        logger.info("closing agent %s's console: %s", self.user.pk, access.access)
        await self.close(code=_close_code(access.access))
        # No more presence or assignment for someone who is gone (this task itself excepted).
        await self._stop_background_tasks()
        return True

    async def _supervision_changed(self, supervisor: bool) -> None:
        """Made or unmade a supervisor while connected: the alerts' group, the rooms read live,
        and a fresh snapshot (every area's queue, or the agent's own)."""
        self.supervisor = supervisor
        if supervisor:
            await self.channel_layer.group_add(realtime.SUPERVISORS_GROUP, self.channel_name)
        else:
            await self.channel_layer.group_discard(realtime.SUPERVISORS_GROUP, self.channel_name)
            for room_id in list(self.watched):
                await self._unwatch(room_id)
        await self._snapshot_again()

    async def _snapshot_again(self) -> None:
        """A fresh snapshot for a connected console, with the queues it shows now."""
        snapshot = await db(selectors.agent_snapshot)(user=self.user)
        self.area_ids = set(snapshot["queue_areas"])
        await self.send_json({"type": "snapshot", **snapshot})

    async def _session_watch(self) -> None:
        """Look again when the session expires (and at least every SESSION_RECHECK_SECONDS,
        for what no signal reports): an expired session closes the console on its own."""
        while True:
            wait = settings.SESSION_RECHECK_SECONDS
            if self.session_expires_at is not None:
                left = (self.session_expires_at - timezone.now()).total_seconds()
                wait = min(wait, max(left, 0) + 0.5)
            await asyncio.sleep(wait)
            try:
                if await self._revoked():
                    return
            except Exception:
                logger.warning("agent %s: session check failed", self.user.pk, exc_info=True)

    async def _heartbeat(self) -> None:
        """Keep the agent online, and tell the console the latest number of each of its rooms so
        it notices an event it never received even when no later event comes."""
        while True:
            await asyncio.sleep(settings.PRESENCE_HEARTBEAT_SECONDS)
            await db(agent_seen)(user_id=self.user.pk)
            seqs = await db(selectors.room_seqs)(room_ids=list(self.rooms))
            await self.send_json({"type": "heartbeat", "rooms": seqs})


def _agent_language(scope: dict[str, Any]) -> str:
    """The console's language, as LocaleMiddleware finds a page's: the language selector's cookie,
    else the browser's Accept-Language, else LANGUAGE_CODE (Channels' CookieMiddleware put the
    cookies in the scope)."""
    wanted = [scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME)]
    headers = dict(scope.get("headers", []))
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    for code, _quality in parse_accept_lang_header(accept):
        if code == "*":
            break
        wanted.append(code)
    for code in [*wanted, settings.LANGUAGE_CODE]:
        if not code:
            continue
        try:
            return translation.get_supported_language_variant(code)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


CHOOSE_AGENT = _("Choose the agent to transfer the conversation to.")
NOTE_IS_TEXT = _("The note for the receiving agent must be text.")


def _whole(content: dict, key: str, refusal: StrOrPromise) -> int:
    """A frame's id field (a JSON integer, not a boolean), or FrameError `refusal`."""
    value = content.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        raise FrameError("invalid", refusal)
    return value


def _text(content: dict, key: str, refusal: StrOrPromise, *, default: str | None = None) -> str:
    """A frame's text field (`default` when it may be left out), or FrameError `refusal`."""
    value = content.get(key, default)
    if not isinstance(value, str):
        raise FrameError("invalid", refusal)
    return value


def _close_code(access: Access) -> int:
    return CLOSE_NOT_AN_AGENT if access is Access.NOT_AN_AGENT else CLOSE_UNAUTHENTICATED


def _as_id(value: Any) -> int:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise FrameError("invalid", _("The conversation is missing or is not a conversation id."))
    return value


def _room_id(content: dict) -> int:
    return _as_id(content.get("room"))


def _closure_reason(content: dict) -> ClosureReason:
    value = _whole(content, "reason", _("Choose a closure reason."))
    reason = closure_reason_get(reason_id=value)
    if reason is None:
        raise ActionError(
            "unknown_reason", _("That closure reason no longer exists: choose another.")
        )
    return reason
