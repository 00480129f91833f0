"""The bot's background work: a room's turn, through django-tasks (immediate or database)."""

import logging

from django_tasks import task

from chatbridge.logs import log_bind
from rooms.bot.survey import survey_turn_run
from rooms.bot.turns import room_turn_run
from rooms.delivery.services import TurnTarget

logger = logging.getLogger("chatbridge.turns")


@task()
def room_turn(*, room_id: int, message_id: int, target: dict[str, str]) -> None:
    log_bind(task_id=f"turn-{room_id}-{message_id}", room_id=room_id)
    try:
        room_turn_run(room_id=room_id, message_id=message_id, target=TurnTarget(**target))
    except Exception:
        # The immediate backend keeps a task's exception to itself; say it. The message stays
        # unhandled and `turns_resume` takes it up again.
        logger.exception("turn of room %s failed", room_id)
        raise


@task()
def survey_turn(*, room_id: int, message_id: int, target: dict[str, str]) -> None:
    """The answers to a closed room's survey (rooms/bot/survey.py); what is not an answer goes
    to a new room, whose bot turn starts here (lost in a crash, `turns_resume` starts it)."""
    log_bind(task_id=f"survey-{room_id}-{message_id}", room_id=room_id)
    try:
        moved = survey_turn_run(room_id=room_id, message_id=message_id, target=TurnTarget(**target))
    except Exception:
        logger.exception("survey turn of room %s failed", room_id)
        raise
    if moved is not None:
        room_turn.enqueue(room_id=moved.room_id, message_id=moved.message_id, target=moved.target)
