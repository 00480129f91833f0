"""The post-close survey: when it is due, its questions, and its start and end.

Four questions, one at a time, over WhatsApp interactive messages (Twilio sends them as numbered
text): would you recommend us (0-10, a list), was it resolved (yes/no buttons), how satisfied
(1-5, a list), and a comment (at most 250 characters, or skip). rooms/bot/survey.py reads the
answers. Each question is one message (the closing text rides in the first question's body, the
reason for asking again in the repeated question's), so nothing can arrive out of order.

WhatsApp lists hold at most 10 rows: the recommendation list offers 10 to 1, and the customer
types 0 (said in the footer); typed answers are accepted for every question.
"""

import datetime as dt
import logging
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from chatbridge.metrics import survey_observe
from rooms.delivery.tasks import message_deliver_on_commit
from rooms.models import Message, Room, Survey
from rooms.whatsapp.client import buttons_body, list_body, text_body

logger = logging.getLogger("chatbridge.survey")

# Questions are asked only while the customer's 24-hour window leaves this much time to answer.
WINDOW = dt.timedelta(hours=24)
WINDOW_MARGIN = dt.timedelta(minutes=10)

COMMENT_MAX = 250
LIST_BUTTON = "Responder"
# A row's or button's id: survey:<step>:<value>.
ID_PREFIX = "survey:"

SATISFACTION_LABELS = {
    5: "Muy satisfecho",
    4: "Satisfecho",
    3: "Neutral",
    2: "Insatisfecho",
    1: "Muy insatisfecho",
}

# What each question says when it is asked again, and why.
INVALID_REASONS = {
    Survey.Step.NPS: "Responde con un número del 0 al 10.",
    Survey.Step.RESOLVED: "Responde solo sí o no.",
    Survey.Step.SATISFACTION: "Responde con un número del 1 al 5.",
    Survey.Step.COMMENT: f"Tu comentario es muy largo: máximo {COMMENT_MAX} caracteres.",
}

NEXT_STEP = {
    Survey.Step.NPS: Survey.Step.RESOLVED,
    Survey.Step.RESOLVED: Survey.Step.SATISFACTION,
    Survey.Step.SATISFACTION: Survey.Step.COMMENT,
}


def survey_due(room: Room, *, now: dt.datetime) -> bool:
    """A survey follows this close: SURVEY_ENABLED, an agent had the room (or SURVEY_BOT_ROOMS),
    and the customer's 24-hour window is open long enough to answer (outside it WhatsApp
    carries only templates)."""
    if not settings.SURVEY_ENABLED:
        return False
    if room.agent_id is None and not settings.SURVEY_BOT_ROOMS:
        return False
    last = room.last_customer_at
    return last is not None and now - last < WINDOW - WINDOW_MARGIN


def survey_start_locked(*, room: Room, now: dt.datetime, opening: str = "") -> Survey | None:
    """Start the survey of a room being closed (the caller holds its row lock, in its
    transaction): the first question goes out with `opening` (the closing text) in its body.
    None if the customer is answering another room's survey (one at a time)."""
    if Survey.objects.filter(customer_id=room.customer_id, status=Survey.Status.ASKING).exists():
        return None
    survey = Survey.objects.create(
        room=room, customer_id=room.customer_id, step=Survey.Step.NPS, asked_at=now
    )
    transaction.on_commit(partial(survey_observe, event="started"))
    survey_message_send(room=room, body=question_body(Survey.Step.NPS, before=opening))
    logger.info("survey of room %s started", room.pk)
    return survey


def survey_message_send(*, room: Room, body: dict[str, Any]) -> Message:
    """A survey message (a question, or the thanks) stored and sent once the caller commits."""
    message = Message.objects.create(**survey_message_fields(room.pk, body))
    message_deliver_on_commit(message, room)
    return message


def survey_message_fields(room_id: int, body: dict[str, Any]) -> dict[str, Any]:
    """The row of a survey message: the system's (no agent or bot wrote it)."""
    interactive = body.get("type") == "interactive"
    return {
        "room_id": room_id,
        "direction": Message.Direction.OUTBOUND,
        "author": Message.Author.SYSTEM,
        "type": Message.Type.INTERACTIVE if interactive else Message.Type.TEXT,
        "text": readable(body),
        "payload": body,
        "status": Message.Status.PENDING,
    }


def question_body(step: str, *, before: str = "") -> dict[str, Any]:
    """The question of `step`, with `before` (the closing text, or why it is asked again) at the
    top of its body."""

    def prompt(question: str) -> str:
        return f"{before}\n\n{question}" if before else question

    if step == Survey.Step.NPS:
        rows = [(option_id(step, n), str(n)) for n in range(10, 0, -1)]
        body = list_body(prompt(settings.SURVEY_NPS_QUESTION), LIST_BUTTON, rows)
        body["interactive"]["footer"] = {"text": "Para 0, escribe 0."}
        return body
    if step == Survey.Step.RESOLVED:
        buttons = [(option_id(step, "yes"), "Sí"), (option_id(step, "no"), "No")]
        return buttons_body(prompt(settings.SURVEY_RESOLVED_QUESTION), buttons)
    if step == Survey.Step.SATISFACTION:
        rows = [(option_id(step, n), f"{n} {label}") for n, label in SATISFACTION_LABELS.items()]
        return list_body(prompt(settings.SURVEY_SATISFACTION_QUESTION), LIST_BUTTON, rows)
    skip = [(option_id(Survey.Step.COMMENT, "skip"), "Omitir")]
    return buttons_body(prompt(settings.SURVEY_COMMENT_QUESTION), skip)


def thanks_body() -> dict[str, Any]:
    return text_body(settings.SURVEY_THANKS_MESSAGE)


def option_id(step: str, value: object) -> str:
    return f"{ID_PREFIX}{step}:{value}"


def readable(body: dict[str, Any]) -> str:
    """What the agents and the history read of a survey message: its text and its options."""
    if body.get("type") != "interactive":
        return str(body.get("text", {}).get("body", ""))
    interactive = body["interactive"]
    action = interactive.get("action", {})
    titles = [button["reply"]["title"] for button in action.get("buttons", [])] or [
        row["title"] for section in action.get("sections", []) for row in section["rows"]
    ]
    return "\n".join([interactive["body"]["text"], " · ".join(titles)])


def survey_end_locked(*, survey: Survey, status: str, now: dt.datetime) -> None:
    """End a survey the caller holds locked; its answers so far stay."""
    survey.status = status
    survey.ended_at = now
    survey.save(update_fields=["status", "ended_at"])
    transaction.on_commit(partial(survey_observe, event=status))
    logger.info("survey of room %s %s", survey.room_id, status)


def surveys_expire(*, now: dt.datetime | None = None) -> int:
    """End the surveys whose question has waited SURVEY_TIMEOUT_MINUTES: nothing is sent (the
    customer moved on), their answers so far stay. Checked again on the locked row: an answer
    that arrived meanwhile wins."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=settings.SURVEY_TIMEOUT_MINUTES)
    expired = 0
    stale = Survey.objects.filter(status=Survey.Status.ASKING, asked_at__lt=cutoff)
    for survey_id in stale.values_list("id", flat=True)[:500]:
        with transaction.atomic():
            survey = (
                Survey.objects.select_for_update()
                .filter(pk=survey_id, status=Survey.Status.ASKING, asked_at__lt=cutoff)
                .first()
            )
            if survey is not None:
                survey_end_locked(survey=survey, status=Survey.Status.EXPIRED, now=now)
                expired += 1
    return expired
