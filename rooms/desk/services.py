"""What an agent writes to their customer."""

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _

from rooms.delivery.tasks import message_deliver_on_commit
from rooms.errors import ActionError
from rooms.events import CUSTOMER_WINDOW, message_data, note_data, room_event_record
from rooms.lines import line_sender
from rooms.media.services import media_limit, storage_name
from rooms.models import Message, MessageTemplate, Room, RoomNote
from rooms.providers import provider_for
from rooms.whatsapp.client import (
    CAPTION_MAX,
    MEDIA_KINDS,
    TEXT_BODY_MAX,
    mime_base,
    template_body,
    text_body,
)
from users.models import Customer

# A size in the reader's language ("5.0 MB", "5,0 MB"), rendered with the message.
_file_size = lazy(filesizeformat, str)
# How the refusal of a file too large names its kind.
_KIND_NAMES = {
    "image": _("an image"),
    "video": _("a video"),
    "audio": _("an audio"),
    "document": _("a document"),
}


def customer_read_mark(*, room_id: int, agent_id: int, marked: str | None = None) -> str | None:
    """An agent is writing in their room: the customer's latest message shows read and the
    customer sees "typing…" (WHATSAPP_READ_MARKS, WHATSAPP_TYPING_INDICATOR). One call per
    message: nothing when `marked`, the id marked last time, is still the latest. Returns the
    latest message's WhatsApp id. Outside any transaction."""
    if not settings.WHATSAPP_READ_MARKS:
        return marked
    latest = (
        Message.objects.filter(
            room_id=room_id,
            room__agent_id=agent_id,
            room__status=Room.Status.ASSIGNED,
            direction=Message.Direction.INBOUND,
            wa_message_id__isnull=False,
        )
        .order_by("-id")
        .values_list("wa_message_id", "room__customer__provider", "room__line")
        .first()
    )
    wa_message_id, provider, line = latest or (None, "", "")
    if wa_message_id is None or wa_message_id == marked:
        return marked
    provider_for(provider).mark_read(
        wa_message_id, typing=settings.WHATSAPP_TYPING_INDICATOR, sender=line_sender(line)
    )
    return wa_message_id


def agent_message_send(*, room_id: int, agent: User, text: str) -> Message:
    """Store an agent's message in their room and send it once committed."""
    text = text.strip()
    if not text:
        raise ActionError("invalid", _("The message is empty: write something to send."))
    if len(text) > TEXT_BODY_MAX:
        raise ActionError(
            "invalid",
            _(
                "The message has %(length)d characters and WhatsApp carries at most %(limit)d: "
                "shorten it or send it in two."
            ),
            length=len(text),
            limit=TEXT_BODY_MAX,
        )
    with transaction.atomic():
        room = _assigned_room(room_id, agent, lock=True)
        _window_open(room)
        return _agent_outbound(
            room, agent, type=Message.Type.TEXT, text=text, payload=text_body(text)
        )


def agent_file_send(
    *, room_id: int, agent: User, upload: UploadedFile, caption: str = ""
) -> Message:
    """Store a file an agent attaches (checked against what WhatsApp carries for its type) and
    send it once committed: uploaded to WhatsApp, then sent by its media id, with ticks and errors
    like a text (rooms/delivery/services.py)."""
    mime_type = mime_base(upload.content_type or "")
    kind = MEDIA_KINDS.get(mime_type)
    if kind is None:
        raise ActionError(
            "invalid",
            _("WhatsApp does not carry files of type %(type)s."),
            type=mime_type or _("unknown"),
        )
    if kind == "sticker":
        kind = "document"  # a WebP from an agent is a picture to keep, not a 512x512 sticker
    if not upload.size:
        raise ActionError("invalid", _("The file is empty."))
    if upload.size > media_limit(kind):
        raise ActionError(
            "invalid",
            _("The file is too large: on WhatsApp %(kind)s can be at most %(limit)s."),
            kind=_KIND_NAMES[kind],
            limit=_file_size(media_limit(kind)),
        )
    caption = caption.strip()
    if len(caption) > CAPTION_MAX:
        raise ActionError(
            "invalid",
            _(
                "The text with the file has %(length)d characters and WhatsApp carries at most "
                "%(limit)d: shorten it."
            ),
            length=len(caption),
            limit=CAPTION_MAX,
        )
    room = _assigned_room(room_id, agent)  # refused before anything is written
    _window_open(room)
    if room.customer.provider != Customer.Provider.WHATSAPP:
        # Twilio sends files by a public URL: not offered until chatbridge has signed ones.
        raise ActionError(
            "invalid",
            _("Files cannot be sent yet to customers who write through %(provider)s."),
            provider=room.customer.provider.capitalize(),
        )
    name = default_storage.save(storage_name(room_id=room_id, mime_type=mime_type), upload)
    try:
        with transaction.atomic():
            room = _assigned_room(room_id, agent, lock=True)
            message = _agent_outbound(
                room,
                agent,
                type=kind,
                text=caption,
                file=name,
                file_name=(upload.name or "")[:255],
                mime_type=mime_type,
                media_size=upload.size,
                media_status=Message.MediaStatus.STORED,
            )
    except BaseException:
        # Nothing stored, no file left behind either (unless the message was committed after
        # all and only what followed its commit failed).
        if not Message.objects.filter(file=name).exists():
            default_storage.delete(name)
        raise
    return message


def _agent_outbound(room: Room, agent: User, **fields: Any) -> Message:
    """An agent's message to the customer, stored pending in their room (inside the caller's
    transaction, the room locked), shown to the room's consoles, and sent once committed."""
    message = Message.objects.create(
        room=room,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.AGENT,
        agent_id=agent.pk,
        status=Message.Status.PENDING,
        **fields,
    )
    Room.objects.filter(pk=room.pk).update(
        last_activity_at=message.created_at,
        first_answered_at=Coalesce("first_answered_at", Value(message.created_at)),
    )
    room_event_record(
        room_id=room.pk, kind="message.new", data=message_data(message), actor_id=agent.pk
    )
    message_deliver_on_commit(message, room)
    return message


def _assigned_room(room_id: int, agent: User, *, lock: bool = False) -> Room:
    rooms = Room.objects.select_related("customer").filter(pk=room_id)
    room = (rooms.select_for_update(of=("self",)) if lock else rooms).first()
    if room is None or room.status != Room.Status.ASSIGNED or room.agent_id != agent.pk:
        raise ActionError("not_your_room", _("This conversation is not assigned to you."))
    return room


def agent_template_send(*, room_id: int, agent: User, template_id: int) -> Message:
    """Send an approved template to the agent's customer: the only message WhatsApp carries once
    the 24-hour window has closed. The message keeps the text the customer reads; the window
    opens again when the customer answers."""
    template = (
        MessageTemplate.objects.filter(pk=template_id, active=True)
        .filter(status__in=MessageTemplate.SENDABLE)
        .first()
    )
    if template is None:
        raise ActionError("invalid", _("This template does not exist or is not approved."))
    with transaction.atomic():
        room = _assigned_room(room_id, agent, lock=True)
        fills = MessageTemplate.fills(
            customer_name=room.customer.name,
            agent_first_name=agent.first_name or agent.get_username(),
        )
        return _agent_outbound(
            room,
            agent,
            type=Message.Type.TEMPLATE,
            text=template.text(fills),
            payload=template_body(template.name, template.language, template.values(fills)),
        )


def _window_open(room: Room) -> None:
    """Free-form messages only within WhatsApp's 24 hours since the customer last wrote (a room
    without a customer message yet is WhatsApp's to judge)."""
    if room.last_customer_at and timezone.now() - room.last_customer_at > CUSTOMER_WINDOW:
        raise ActionError(
            "window_closed",
            _(
                "More than 24 hours have passed since the customer last wrote: WhatsApp only "
                "carries an approved template now."
            ),
        )


def agent_note_add(*, room_id: int, agent: User, text: str) -> RoomNote:
    """An internal note in the agent's room: shown to the room's agents and kept in its history;
    never sent to the customer."""
    text = text.strip()
    if not text:
        raise ActionError("invalid", _("The note is empty: write something to keep."))
    if len(text) > TEXT_BODY_MAX:
        raise ActionError(
            "invalid",
            _("The note has %(length)d characters; at most %(limit)d fit."),
            length=len(text),
            limit=TEXT_BODY_MAX,
        )
    with transaction.atomic():
        room = _assigned_room(room_id, agent, lock=True)
        note = RoomNote.objects.create(room=room, author=agent, text=text)
        room_event_record(room_id=room.pk, kind="note.new", data=note_data(note), actor_id=agent.pk)
    return note
