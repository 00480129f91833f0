"""The bot's turn: a customer message in a bot room goes to Watson and the reply to WhatsApp.

A turn holds the room's turn lock (a PostgreSQL session advisory lock, so no transaction stays
open across the vendor calls) and answers every unanswered message of the room up to its own,
oldest first. Whichever worker gets the lock answers them in order, so a burst spread over
several processes is still answered in the order it arrived, and the room gets one session.

Nothing here leaves a customer unanswered: Watson failing ends in the apology and the queue,
and a reply WhatsApp refuses hands the room to the agents.
"""

import datetime as dt
import logging
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chatbridge.http import VendorError
from chatbridge.locks import ROOM_TURN, lock_for_session
from chatbridge.metrics import TURN_STAGE, timed
from chatbridge.statements import one_round_trip_usable
from rooms.areas import area_for_handoff
from rooms.bot.replies import (
    BotReply,
    Draft,
    Handoff,
    option_value,
    replies_from_watson,
    text_draft,
    typed_choice,
)
from rooms.bot.statements import reply_store, unanswered_read
from rooms.conversation.services import outside_business_hours, room_queue, room_queue_locked
from rooms.delivery.services import SendOutcome, TurnTarget, outbound_deliver, send_lease_until
from rooms.desk.selectors import free_agent_exists
from rooms.lines import line_area_id, line_of, line_sender
from rooms.models import Message, Room
from rooms.providers import provider_for
from rooms.whatsapp.webhook import interactive_reply_id
from watson.services import watson_reply, watson_session_touch

logger = logging.getLogger("chatbridge.turns")

_TEXT_TYPES = {Message.Type.TEXT, Message.Type.INTERACTIVE}


@dataclass(frozen=True)
class Inbound:
    """What a turn needs of a customer's message."""

    pk: int
    type: str
    text: str
    wa_message_id: str | None = None


def room_turn_run(*, room_id: int, message_id: int, target: TurnTarget) -> None:
    # The room's unanswered messages are read in the lock's own round trip, once it is held.
    with lock_for_session(
        ROOM_TURN, room_id, then=unanswered_read(room_id=room_id, up_to=message_id)
    ) as rows:
        messages = [Inbound(*row) for row in rows]
        if messages:
            read_mark(messages, target)
        with_bot = True
        for message in messages:
            if with_bot:
                with_bot = _answer(room_id=room_id, message=message, target=target)
            else:
                # An earlier message of this run handed the room to the agents: it is theirs.
                _mark_handled(message)


def read_mark(messages: list[Inbound], target: TurnTarget, *, thinking: bool = True) -> None:
    """The customer sees their messages read, and "typing…" while Watson thinks (`thinking`):
    one call, for the last of them (it marks the earlier ones too), outside any transaction;
    none where the provider has no read marks (Twilio)."""
    last = messages[-1]
    if not settings.WHATSAPP_READ_MARKS or not last.wa_message_id:
        return
    to_watson = thinking and last.type in _TEXT_TYPES and bool(last.text.strip())
    typing = settings.WHATSAPP_TYPING_INDICATOR and to_watson
    with timed(TURN_STAGE, "read_mark"):
        provider_for(target.provider).mark_read(
            last.wa_message_id, typing=typing, sender=line_sender(target.line)
        )


def _handoff_drafts(text: str) -> list[Draft]:
    """The hand-off's "an agent will be with you": not outside BUSINESS_HOURS, when the queue
    tells the customer the hours instead (rooms/conversation/services.py)."""
    return [] if outside_business_hours(timezone.now()) else [text_draft(text)]


def _answer(*, room_id: int, message: Inbound, target: TurnTarget) -> bool:
    """Answer one message; False once the room has left the bot."""
    if message.type not in _TEXT_TYPES or not message.text.strip():
        return _reply(
            room_id, message, target, BotReply([text_draft(settings.BOT_TEXT_ONLY_MESSAGE)])
        )
    if is_handoff_request(message.text):
        note = "El cliente pidió hablar con un asesor."
        return _reply(
            room_id, message, target, BotReply(_handoff_drafts(settings.HANDOFF_MESSAGE)), note=note
        )
    try:
        # The session's expiry moves on with the reply's own statements (`session_touch`).
        output = watson_reply(
            room_id=room_id,
            text=_watson_input(room_id, message),
            user_id=target.watson_user_id,
            touch=False,
            # Each business number may have its own assistant (rooms/lines.py).
            assistant=line_of(target.line).assistant if target.line else None,
        )
    except VendorError as error:
        logger.warning("watson failed for room %s: %s", room_id, error)
        apology = BotReply([text_draft(settings.BOT_APOLOGY_MESSAGE)])
        return _reply(room_id, message, target, apology, note=f"El asistente falló: {error}")
    reply = replies_from_watson(output)
    if reply.handoff is not None:
        reply.drafts.extend(_handoff_drafts(_handoff_text(reply.handoff, target.line)))
        note = reply.handoff.note or "El asistente transfirió la conversación."
        return _reply(
            room_id,
            message,
            target,
            reply,
            note=note,
            session_touch=True,
            transfer_info=reply.handoff.transfer_info,
        )
    if not reply.drafts:
        if reply.silent and not reply.unreadable:
            # Deliberately silent (a pause or end_session alone): nothing to say, by design.
            watson_session_touch(room_id=room_id)
            return _mark_handled(message)
        return _unreadable(room_id, message, target, reply)
    return _reply(room_id, message, target, reply, session_touch=True)


def _unreadable(room_id: int, message: Inbound, target: TurnTarget, reply: BotReply) -> bool:
    """Watson said nothing a WhatsApp customer can read: never silence, but the fallback text
    or, with BOT_UNREADABLE_REPLY=handoff, a person."""
    kinds = ", ".join(sorted(set(reply.unreadable))) or "nada"
    logger.warning("room %s: Watson's answer had nothing WhatsApp can show (%s)", room_id, kinds)
    if settings.BOT_UNREADABLE_REPLY == "handoff":
        note = f"El asistente respondió con algo que WhatsApp no muestra ({kinds})."
        handoff = BotReply([text_draft(settings.HANDOFF_MESSAGE)])
        return _reply(room_id, message, target, handoff, note=note, session_touch=True)
    fallback = BotReply([text_draft(settings.BOT_FALLBACK_MESSAGE)])
    return _reply(room_id, message, target, fallback, session_touch=True)


def _watson_input(room_id: int, message: Inbound) -> str:
    """What Watson is to receive: a tapped option's value (not the label the customer saw), a
    typed number answering the bot's last numbered options as that option's value, else the
    text itself."""
    if message.type == Message.Type.INTERACTIVE:
        payload = Message.objects.values_list("payload", flat=True).get(pk=message.pk)
        return option_value(interactive_reply_id(payload)) or message.text
    number = typed_choice(message.text)
    if number is not None:
        options = (
            Message.objects.filter(
                room_id=room_id, direction=Message.Direction.OUTBOUND, author=Message.Author.BOT
            )
            .order_by("-id")
            .values_list("options", flat=True)
            .first()
        ) or []
        if 1 <= number <= len(options):
            return options[number - 1]
    return message.text


def _handoff_text(handoff: Handoff, line: str) -> str:
    # Someone free in the area the room is going to, not anywhere.
    area = area_for_handoff(handoff.transfer_info, default_id=line_area_id(line))
    if free_agent_exists(area_id=area.pk):
        return handoff.available_text or settings.HANDOFF_MESSAGE
    return handoff.unavailable_text or handoff.available_text or settings.HANDOFF_MESSAGE


def is_handoff_request(text: str) -> bool:
    """A short message naming a human ("agente", "quiero un asesor"): the customer's right to a
    person does not depend on the bot's design."""
    plain = unicodedata.normalize("NFKD", text.lower())
    words = re.findall(r"[a-z]+", "".join(c for c in plain if not unicodedata.combining(c)))
    return 0 < len(words) <= 4 and any(word in settings.HANDOFF_KEYWORDS for word in words)


def _reply(
    room_id: int,
    inbound: Inbound,
    target: TurnTarget,
    reply: BotReply,
    *,
    note: str | None = None,
    session_touch: bool = False,
    transfer_info: dict[str, Any] | None = None,
) -> bool:
    """Store the reply and mark the message answered in one transaction, then send. With a
    `note` the room also goes to the agents' queue (with Watson's `transfer_info`); with
    `session_touch` the room's Watson session expires later. False if the room is no longer the
    bot's."""
    now = timezone.now()
    # Stored as being sent by this turn, each with its own lease: nobody else sends them.
    drafts = [
        _outbound(room_id, draft, lease_until=send_lease_until(now, place=place))
        for place, draft in enumerate(reply.drafts)
    ]
    if note is None and one_round_trip_usable():
        outbound = reply_store(
            room_id=room_id,
            inbound_id=inbound.pk,
            outbound=drafts,
            now=now,
            touch_session=session_touch,
        )
    else:
        if session_touch:
            watson_session_touch(room_id=room_id)
        outbound = reply_store_orm(
            room_id=room_id,
            inbound_id=inbound.pk,
            outbound=drafts,
            now=now,
            note=note,
            transfer_info=transfer_info,
        )
    if outbound is None:
        # Closed or taken over while Watson was thinking: the message stays with the room.
        logger.info("room %s left the bot during its turn; reply dropped", room_id)
        return False
    # The hand-off's own texts are the first thing the agent sees: their ticks count.
    handed_off = note is not None
    outcomes = [
        outbound_deliver(message, target, in_agents_room=handed_off) for message in outbound
    ]
    # An unanswered send is not a failed one: its status, or recovery, settles it.
    delivered = SendOutcome.FAILED not in outcomes
    if note is not None:
        logger.info("room %s handed to agents: %s", room_id, note[:200])
        return False
    if not delivered:
        return not _queue_after_failed_send(room_id)
    return True


def reply_store_orm(
    *,
    room_id: int,
    inbound_id: int,
    outbound: list[Message],
    now: dt.datetime,
    note: str | None = None,
    transfer_info: dict[str, Any] | None = None,
) -> list[Message] | None:
    """What rooms.bot.statements.reply_store stores, through the ORM (a hand-off, or SQLite);
    with a `note` the room also goes to the agents' queue. The stored replies (unsaved
    `outbound`, saved in order), or None if the room had left the bot."""
    with transaction.atomic():
        if note is None:
            still_bot = Room.objects.filter(pk=room_id, status=Room.Status.BOT).update(
                last_activity_at=now
            )
        else:
            room = (
                Room.objects.select_for_update(of=("self",))
                .select_related("customer")
                .get(pk=room_id)
            )
            still_bot = room.status == Room.Status.BOT
            if still_bot:
                Room.objects.filter(pk=room_id).update(last_activity_at=now)
                room_queue_locked(room=room, note=note, transfer_info=transfer_info)
        Message.objects.filter(pk=inbound_id).update(handled_at=now)
        if not still_bot:
            return None
        return Message.objects.bulk_create(outbound)


def _outbound(room_id: int, draft: Draft, *, lease_until: dt.datetime) -> Message:
    return Message(
        room_id=room_id,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.BOT,
        type=draft.type,
        text=draft.text,
        payload=draft.body,
        status=Message.Status.SENDING,
        send_lease_until=lease_until,
        send_attempts=1,
        options=list(draft.options),
    )


def _queue_after_failed_send(room_id: int) -> bool:
    return room_queue(room_id=room_id, note="La respuesta del asistente no se pudo entregar.")


def _mark_handled(message: Inbound) -> bool:
    Message.objects.filter(pk=message.pk).update(handled_at=timezone.now())
    return True
