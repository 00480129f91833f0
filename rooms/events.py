"""Room events: numbered per room, stored with the change that caused them, published on commit.

An event row is written in the same transaction as the change it describes, so what agents are
told and what happened cannot disagree; the number comes from `Room.event_seq`, incremented by
an UPDATE that holds the room's row lock, so two changes of one room can never share a number.
"""

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Substr
from django.urls import reverse
from django.utils import timezone

from rooms import realtime
from rooms.areas import in_areas, room_area_id
from rooms.models import CannedReply, Message, MessageTemplate, Room, RoomEvent, RoomNote
from rooms.statements import event_seq_next
from users.models import mask_uid
from users.selectors import display_name

# How long a customer may be written to after their last message (WhatsApp's service window).
CUSTOMER_WINDOW = dt.timedelta(hours=24)
RECENT_MESSAGES = 50
QUEUE_PREVIEW_CHARS = 80


def room_event_record(
    *,
    room_id: int,
    kind: str,
    data: dict[str, Any],
    actor_id: int | None = None,
    notify_agent_id: int | None = None,
) -> RoomEvent:
    """Record an event of the room (inside the caller's transaction) and publish it on commit
    to the room's group, and to `notify_agent_id`'s consoles (a room assigned to them)."""
    seq = event_seq_next(room_id=room_id)
    event = RoomEvent.objects.create(
        room_id=room_id, seq=seq, kind=kind, data=data, actor_id=actor_id
    )
    transaction.on_commit(lambda: room_event_publish(event, notify_agent_id=notify_agent_id))
    return event


def room_event_publish(event: RoomEvent, *, notify_agent_id: int | None = None) -> None:
    """Publish a committed event to its room's group (and to `notify_agent_id`'s consoles)."""
    frame = {"type": "room.event", "event": event_frame(event)}
    realtime.publish(realtime.room_group_name(event.room_id), frame)
    if notify_agent_id is not None:
        realtime.publish(realtime.agent_group_name(notify_agent_id), frame)


def queue_changed_on_commit(area_id: int | None) -> None:
    """The queue of one area changed: its agents' queue views are refreshed with one query,
    made once per change (each console keeps the areas it works; rooms/consumers.py)."""

    def publish() -> None:
        area = room_area_id(area_id)
        realtime.publish(
            realtime.AGENTS_GROUP,
            {"type": "queue.changed", "area": area, "queue": queue_data(area_ids=[area])},
        )

    transaction.on_commit(publish)


def event_frame(event: RoomEvent) -> dict[str, Any]:
    return {
        "room": event.room_id,
        "seq": event.seq,
        "kind": event.kind,
        "data": event.data,
        "actor": event.actor_id,
        "at": event.created_at.isoformat(),
    }


def message_data(message: Message) -> dict[str, Any]:
    data = {
        "id": message.pk,
        "direction": message.direction,
        "author": message.author,
        "agent": message.agent_id,
        "type": message.type,
        "text": message.text,
        "status": message.status,
        "error_code": message.error_code,
        "error_detail": message.error_detail,
        "at": message.created_at.isoformat() if message.created_at else None,
    }
    # What only some messages have, only when they have it: a text pays nothing for it.
    if message.media_status:
        data["media"] = media_data(message)
    if message.quoted:
        data["quoted"] = message.quoted
    if message.edited_at:
        data["edited_at"] = message.edited_at.isoformat()
    if message.deleted_at:
        data["deleted_at"] = message.deleted_at.isoformat()
    if message.direction == Message.Direction.INBOUND:
        data.update(_inbound_extras(message))
    return data


def media_data(message: Message) -> dict[str, Any]:
    """A message's file as a console shows it; `url` (the authenticated view) once it is kept."""
    stored = message.media_status == Message.MediaStatus.STORED and message.pk
    return {
        "status": message.media_status,
        "mime_type": message.mime_type,
        "file_name": message.file_name,
        "size": message.media_size,
        "error": message.media_error,
        "url": reverse("message-file", args=[message.pk]) if stored else None,
    }


def _inbound_extras(message: Message) -> dict[str, Any]:
    """A location's coordinates, shared contacts, a click-to-WhatsApp ad, a forward: read from
    the message as WhatsApp sent it."""
    payload = message.payload if isinstance(message.payload, dict) else {}
    extras: dict[str, Any] = {}
    location = payload.get("location")
    if message.type == Message.Type.LOCATION and isinstance(location, dict):
        latitude, longitude = location.get("latitude"), location.get("longitude")
        if _is_number(latitude) and _is_number(longitude):
            extras["location"] = {
                "latitude": latitude,
                "longitude": longitude,
                "name": _text(location.get("name")),
                "address": _text(location.get("address")),
                "map_url": settings.MAP_LINK.format(latitude=latitude, longitude=longitude),
            }
    cards = payload.get("contacts")
    if message.type == Message.Type.CONTACTS and isinstance(cards, list):
        extras["contacts"] = [_contact_card(card) for card in cards if isinstance(card, dict)]
    referral = payload.get("referral")
    if isinstance(referral, dict):
        extras["referral"] = {
            key: _text(referral.get(key))
            for key in ("headline", "body", "source_url", "source_type")
        }
    context = payload.get("context")
    if isinstance(context, dict) and (
        context.get("forwarded") or context.get("frequently_forwarded")
    ):
        extras["forwarded"] = True
    return extras


def _contact_card(card: dict[str, Any]) -> dict[str, Any]:
    name, phones, emails = card.get("name"), card.get("phones"), card.get("emails")
    name = name if isinstance(name, dict) else {}
    phones = phones if isinstance(phones, list) else []
    emails = emails if isinstance(emails, list) else []
    return {
        "name": _text(name.get("formatted_name")),
        "phones": [_text(p.get("phone")) for p in phones if isinstance(p, dict) and p.get("phone")],
        "emails": [_text(e.get("email")) for e in emails if isinstance(e, dict) and e.get("email")],
    }


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and abs(value) <= 180


def _text(value: Any) -> str:
    return value[:500] if isinstance(value, str) else ""


def room_data(room: Room) -> dict[str, Any]:
    """A room as an agent sees it; the customer's number as the bank's policy says
    (AGENT_NUMBER_DISPLAY: full, or masked to its last four digits)."""
    window_ends = room.last_customer_at + CUSTOMER_WINDOW if room.last_customer_at else None
    return {
        "id": room.pk,
        "status": room.status,
        "seq": room.event_seq,
        "customer": {"name": room.customer.name, "number": customer_number(room.customer.uid)},
        "agent": room.agent_id,
        "area": room.area_id,  # none: the default area's (snapshot["default_area"])
        "line": room.line,  # the business number written to: snapshot["lines"] names it
        "handoff_note": room.handoff_note,
        "opened_at": room.opened_at.isoformat(),
        "queued_at": room.queued_at.isoformat() if room.queued_at else None,
        "assigned_at": room.assigned_at.isoformat() if room.assigned_at else None,
        "window_ends_at": window_ends.isoformat() if window_ends else None,
    }


def customer_number(uid: str) -> str:
    if settings.AGENT_NUMBER_DISPLAY == "masked":
        return mask_uid(uid)
    return f"+{uid}" if uid.isdigit() else uid  # a business-scoped id has no number to show


def note_data(note: RoomNote) -> dict[str, Any]:
    return {
        "id": note.pk,
        "author": note.author_id,
        "author_name": display_name(note.author),
        "text": note.text,
        "at": note.created_at.isoformat(),
    }


def room_detail(room: Room) -> dict[str, Any]:
    """A room its agent works in: with its latest messages, and what fills a template's
    parameters in it (the console shows the text the customer will read)."""
    recent = list(room.messages.order_by("-id")[:RECENT_MESSAGES])
    agent = room.agent
    fills = MessageTemplate.fills(
        customer_name=room.customer.name,
        agent_first_name=(agent.first_name or agent.get_username()) if agent else "",
    )
    notes = room.notes.select_related("author").order_by("-id")[:RECENT_MESSAGES]
    data = room_data(room)
    customer = room.customer
    return {
        **data,
        # The customer panel: who this is (the earlier conversations come when it opens).
        "customer": {
            **data["customer"],
            "id": customer.pk,
            "profile_name": customer.profile_name,
            "first_contact": customer.created_at.isoformat(),
            "notes": customer.notes,
        },
        "messages": [message_data(m) for m in reversed(recent)],
        "notes": [note_data(note) for note in reversed(list(notes))],
        "template_fills": fills,
        # Templates go through Meta's Cloud API only (Twilio's need its Content API).
        "templates_available": room.customer.provider == "whatsapp",
    }


def canned_replies_data() -> list[dict[str, Any]]:
    """The canned replies agents may pick (their placeholders are filled in the composer from
    the room's `template_fills`)."""
    active = CannedReply.objects.filter(active=True)
    return [
        {
            "id": reply.pk,
            "title": reply.title,
            "shortcut": reply.shortcut,
            "text": reply.text,
            "area": reply.area_id,  # none: every area's
        }
        for reply in active
    ]


def templates_data() -> list[dict[str, Any]]:
    """The templates agents may send (active, and approved by Meta)."""
    approved = MessageTemplate.objects.filter(active=True, status__in=MessageTemplate.SENDABLE)
    fields = ("id", "name", "language", "header", "body", "parameters")
    return [{field: getattr(template, field) for field in fields} for template in approved]


def queue_data(*, area_ids: list[int]) -> list[dict[str, Any]]:
    """The rooms waiting in these areas, longest waiting first."""
    # The first words of what each customer last wrote, in the same query.
    last_words = (
        Message.objects.filter(room=OuterRef("pk"), direction=Message.Direction.INBOUND)
        .order_by("-id")
        .values("text")[:1]
    )
    queued = (
        Room.objects.filter(in_areas(area_ids), status=Room.Status.QUEUED)
        .select_related("customer")
        .annotate(last_words=Substr(Subquery(last_words), 1, QUEUE_PREVIEW_CHARS))
        .order_by("queued_at", "id")[: settings.QUEUE_VIEW_LIMIT]
    )
    now = timezone.now()
    return [
        {
            **room_data(room),
            "waiting_seconds": int((now - (room.queued_at or now)).total_seconds()),
            "preview": room.last_words or "",
        }
        for room in queued
    ]
