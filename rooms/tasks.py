"""Background work of rooms, through django-tasks (immediate or database backend)."""

import logging

from django_tasks import task

from chatbridge.logs import log_bind
from rooms.turns import TurnTarget, room_turn_run

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
def message_deliver(*, message_id: int, target: dict[str, str]) -> None:
    """Send an agent's or the system's message (stored as pending) through WhatsApp."""
    from rooms.models import Message
    from rooms.turns import outbound_deliver

    log_bind(task_id=f"send-{message_id}")
    message = Message.objects.filter(pk=message_id, status=Message.Status.PENDING).first()
    if message is not None:
        outbound_deliver(message, TurnTarget(**target))
