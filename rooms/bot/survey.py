"""The survey's turn: a customer's message while their closed room's survey asks.

It runs as the bot's turn does (rooms/bot/turns.py): under the room's turn lock, every unanswered
message of the room up to its own, oldest first, each answer stored with the next question (and
the message marked answered) in one transaction, the question sent after it. So a burst of
answers is read in order, a redelivered one is stored once (the webhook's unique id), and a
crashed turn is taken up again by `turns_resume`.

An answer moves the survey on; an invalid one (a number out of range, a word that is not yes or
no, a comment too long) is asked again once with why; anything else (a longer message, a file, a
second invalid answer) is not an answer: the survey ends with what it has, and that message and
those after it open a new room with the bot, so nobody is stuck in a survey.
"""

import datetime as dt
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chatbridge.locks import CUSTOMER_STORE, ROOM_TURN, lock_for_session, lock_for_transaction
from chatbridge.metrics import survey_observe
from rooms.bot.statements import unanswered_read
from rooms.bot.turns import Inbound, read_mark
from rooms.conversation.survey import (
    COMMENT_MAX,
    ID_PREFIX,
    INVALID_REASONS,
    NEXT_STEP,
    question_body,
    survey_end_locked,
    survey_message_fields,
    thanks_body,
)
from rooms.delivery.services import TurnTarget, outbound_deliver, send_lease_until, turn_target
from rooms.desk.alerts import alert_low_score
from rooms.events import message_data, room_event_record
from rooms.models import Message, Room, Survey
from rooms.whatsapp.webhook import interactive_reply_id
from users.selectors import CustomerRef

logger = logging.getLogger("chatbridge.survey")

_TEXT_TYPES = {Message.Type.TEXT, Message.Type.INTERACTIVE}
# What a customer types to skip the comment.
_SKIP_WORDS = {"omitir", "omito", "no", "ninguno", "nada", "skip", "paso"}
_YES, _NO = {"si", "yes", "claro"}, {"no"}


@dataclass(frozen=True)
class Answer:
    """What a message says to the question asked: a value, an invalid try, or not an answer."""

    value: int | bool | str | None = None
    valid: bool = False
    # Not valid, but meant as an answer (asked again once, with why).
    attempt: bool = False


@dataclass(frozen=True)
class Moved:
    """The customer's messages went to this room: its bot turn is due up to `message_id`."""

    room_id: int
    message_id: int
    target: dict[str, str]


def survey_turn_run(*, room_id: int, message_id: int, target: TurnTarget) -> Moved | None:
    """Answer the survey's unanswered messages up to `message_id`; what moved to a new bot
    room, if anything did (the caller starts its turn)."""
    with lock_for_session(
        ROOM_TURN, room_id, then=unanswered_read(room_id=room_id, up_to=message_id)
    ) as rows:
        messages = [Inbound(*row) for row in rows]
        if messages:
            read_mark(messages, target, thinking=False)  # no Watson to wait for
        for message in messages:
            sent = _answer(
                room_id=room_id, message_id=message.pk, kind=message.type, text=message.text
            )
            if isinstance(sent, Moved) or sent is None:
                return sent  # not an answer: it and the messages after it went elsewhere
            outbound_deliver(sent, target)
    return None


def _answer(*, room_id: int, message_id: int, kind: str, text: str) -> Message | Moved | None:
    """Read one answer and store what follows it: the message to send; or, once the survey has
    ended, where the customer's messages went (None: to the agents' room, theirs to answer)."""
    now = timezone.now()
    with transaction.atomic():
        survey = (
            Survey.objects.select_for_update(of=("self",))
            .select_related("room__customer")
            .filter(room_id=room_id)
            .first()
        )
        if survey is None or survey.status != Survey.Status.ASKING:
            # Ended meanwhile (timed out): the message is the start of a new conversation.
            closed = (
                survey.room if survey else Room.objects.select_related("customer").get(pk=room_id)
            )
            return _to_new_room(closed, from_message=message_id, now=now)
        reply_id = ""
        if kind == Message.Type.INTERACTIVE:
            payload = Message.objects.values_list("payload", flat=True).get(pk=message_id)
            reply_id = interactive_reply_id(payload)
        answer = answer_parse(survey.step, kind=kind, text=text, reply_id=reply_id)
        if answer.valid:
            body = _record(survey, answer, now=now)
        elif answer.attempt and not survey.reasked:
            survey.reasked = True
            survey.asked_at = now
            survey.save(update_fields=["reasked", "asked_at"])
            body = question_body(survey.step, before=INVALID_REASONS[Survey.Step(survey.step)])
        else:
            survey_end_locked(survey=survey, status=Survey.Status.ENDED, now=now)
            return _to_new_room(survey.room, from_message=message_id, now=now)
        Message.objects.filter(pk=message_id).update(handled_at=now)
        # Stored as being sent by this turn, under its lease: nobody else sends it meanwhile.
        question = Message.objects.create(
            **survey_message_fields(room_id, body)
            | {
                "status": Message.Status.SENDING,
                "send_lease_until": send_lease_until(now),
                "send_attempts": 1,
            }
        )
    return question


def _record(survey: Survey, answer: Answer, *, now: dt.datetime) -> dict:
    """Keep a valid answer and move on: the next question's body, or the thanks."""
    step = survey.step
    if step == Survey.Step.NPS:
        survey.nps = int(answer.value)  # type: ignore[arg-type]
        if survey.nps < settings.SURVEY_LOW_NPS:
            alert_low_score(survey)
    elif step == Survey.Step.RESOLVED:
        survey.resolved = bool(answer.value)
    elif step == Survey.Step.SATISFACTION:
        survey.satisfaction = int(answer.value)  # type: ignore[arg-type]
    else:
        survey.comment = str(answer.value or "")
    following = NEXT_STEP.get(Survey.Step(step))
    survey.reasked = False
    survey.asked_at = now
    if following is None:
        survey.status = Survey.Status.COMPLETED
        survey.ended_at = now
    else:
        survey.step = following
    survey.save()
    value = getattr(survey, step)
    transaction.on_commit(partial(survey_observe, question=step, value=value))
    if following is None:
        transaction.on_commit(partial(survey_observe, event=Survey.Status.COMPLETED.value))
    logger.info("survey of room %s: %s answered", survey.room_id, step)
    return question_body(following) if following is not None else thanks_body()


def answer_parse(step: str, *, kind: str, text: str, reply_id: str = "") -> Answer:
    """What a message says to the question of `step`: a tapped option (its id names the
    question and the value) or a typed answer ("si", "sí", "no", digits)."""
    if reply_id.startswith(ID_PREFIX):
        tapped_step, _, value = reply_id.removeprefix(ID_PREFIX).partition(":")
        if tapped_step != step:
            return Answer(attempt=True)  # an earlier question's option: this one is asked again
        text = {"yes": "si", "no": "no", "skip": "omitir"}.get(value, value)
    elif kind not in _TEXT_TYPES:
        return Answer()  # a file, a location: not an answer
    text = text.strip()
    plain = _plain(text)
    if step == Survey.Step.COMMENT:
        if not text or plain in _SKIP_WORDS:
            return Answer(value="", valid=True)
        if len(text) > COMMENT_MAX:
            return Answer(attempt=True)
        return Answer(value=text, valid=True)
    attempt = len(plain.split()) <= 3 or any(c.isdigit() for c in text)
    if step == Survey.Step.RESOLVED:
        if plain in _YES or plain in _NO:
            return Answer(value=plain in _YES, valid=True)
        return Answer(attempt=attempt)
    number = re.fullmatch(r"(\d{1,3})(?:\s*/\s*(?:10|5))?", plain)
    lowest, highest = (0, 10) if step == Survey.Step.NPS else (1, 5)
    if number and lowest <= int(number[1]) <= highest:
        return Answer(value=int(number[1]), valid=True)
    return Answer(attempt=attempt)


def _plain(text: str) -> str:
    """Lower case, no accents, no punctuation around the words: "¡Sí!" is "si"."""
    decomposed = unicodedata.normalize("NFKD", text.lower())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(re.findall(r"[a-z0-9/]+", bare))


def _to_new_room(closed: Room, *, from_message: int, now: dt.datetime) -> Moved | None:
    """The customer's messages from `from_message` on leave the survey's room (`closed`, with
    its customer) for their open room on that number (a new one with the bot if none): under
    the customer's lock, as the webhook stores them, so none arrives in the survey's room after
    this."""
    customer_id, line = closed.customer_id, closed.line
    lock_for_transaction(CUSTOMER_STORE, customer_id)
    room = (
        Room.objects.select_for_update(of=("self",))
        .filter(customer_id=customer_id, line=line)
        .exclude(status=Room.Status.CLOSED)
        .first()
    )
    if room is None:
        room = Room.objects.create(customer_id=customer_id, line=line, last_activity_at=now)
    customer = CustomerRef.of(closed.customer)
    moved = Message.objects.filter(
        room_id=closed.pk, direction=Message.Direction.INBOUND, id__gte=from_message
    )
    last = max(moved.values_list("id", flat=True), default=None)
    moved.update(room_id=room.pk, updated_at=now)
    Room.objects.filter(pk=room.pk).update(last_activity_at=now, last_customer_at=now)
    logger.info("room %s: messages after the survey went to room %s", closed.pk, room.pk)
    if last is not None and room.status == Room.Status.BOT:
        return Moved(room_id=room.pk, message_id=last, target=turn_target(customer, line))
    # The agents' room (opened meanwhile): theirs to answer, seen live.
    arrived = Message.objects.filter(room_id=room.pk, id__gte=from_message, handled_at=None)
    for message in arrived.order_by("id"):
        room_event_record(room_id=room.pk, kind="message.new", data=message_data(message))
    arrived.update(handled_at=now)
    return None
