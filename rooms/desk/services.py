"""What an agent writes to their customer."""

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from rooms.delivery.tasks import message_deliver_on_commit
from rooms.errors import ActionError
from rooms.events import message_data, room_event_record
from rooms.models import Message, Room
from rooms.providers import provider_for
from rooms.whatsapp.client import TEXT_BODY_MAX, text_body


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
        .values_list("wa_message_id", "room__customer__provider")
        .first()
    )
    wa_message_id, provider = latest or (None, "")
    if wa_message_id is None or wa_message_id == marked:
        return marked
    provider_for(provider).mark_read(wa_message_id, typing=settings.WHATSAPP_TYPING_INDICATOR)
    return wa_message_id


def agent_message_send(*, room_id: int, agent: User, text: str) -> Message:
    """Store an agent's message in their room and send it once committed."""
    text = text.strip()
    if not text:
        raise ActionError("invalid", "the message is empty")
    if len(text) > TEXT_BODY_MAX:
        raise ActionError("invalid", f"the message is longer than {TEXT_BODY_MAX} characters")
    with transaction.atomic():
        room = (
            Room.objects.select_for_update(of=("self",))
            .select_related("customer")
            .filter(pk=room_id)
            .first()
        )
        if room is None or room.status != Room.Status.ASSIGNED or room.agent_id != agent.pk:
            raise ActionError("not_your_room", "this room is not assigned to you")
        message = Message.objects.create(
            room=room,
            direction=Message.Direction.OUTBOUND,
            author=Message.Author.AGENT,
            agent_id=agent.pk,
            type=Message.Type.TEXT,
            text=text,
            payload=text_body(text),
            status=Message.Status.PENDING,
        )
        Room.objects.filter(pk=room.pk).update(last_activity_at=message.created_at)
        room_event_record(
            room_id=room.pk, kind="message.new", data=message_data(message), actor_id=agent.pk
        )
        message_deliver_on_commit(message, room.customer)
    return message
