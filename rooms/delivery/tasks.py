"""Delivery's background work: sending an agent's or the system's stored message."""

import logging
from functools import partial

from django_tasks import task

from chatbridge.logs import log_bind
from chatbridge.tasks import enqueue_with_transaction
from rooms.delivery.services import TurnTarget, outbound_deliver, outbound_take, turn_target
from rooms.models import Message, Room
from users.selectors import CustomerRef

logger = logging.getLogger("chatbridge.delivery")


@task()
def message_deliver(*, message_id: int, target: dict[str, str]) -> None:
    """Send an agent's or the system's message (stored as pending) through WhatsApp, unless
    someone else holds its send or it is settled (recovery got there first)."""
    log_bind(task_id=f"send-{message_id}")
    message = outbound_take(
        message_id=message_id, provider=target["provider"], line=target.get("line", "")
    )
    if message is not None:
        outbound_deliver(message, TurnTarget(**target))


def message_deliver_on_commit(message: Message, room: Room) -> None:
    """Send `message` once the caller's transaction commits (its task row commits with it), from
    the business number the room's customer wrote to."""
    enqueue = partial(
        message_deliver.enqueue,
        message_id=message.pk,
        target=turn_target(CustomerRef.of(room.customer), room.line),
    )
    enqueue_with_transaction(enqueue)
