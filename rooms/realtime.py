"""The only code that talks to the channel layer from views, services and task workers.

Everything is published after the transaction commits, and a channel-layer failure is logged and
swallowed: the data is in PostgreSQL, and an agent who missed an event gets it on reconnect or
on the next gap in the room's sequence (see RoomEvent).

Groups:
- `agents`: every connected agent; the queue changes here.
- `agent.<user id>`: one agent's consoles; assignment and transfer of rooms to them.
- `room.<room id>`: the consoles of the agent the room is assigned to.
"""

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from chatbridge.metrics import LAYER_PUBLISH_FAILURES

logger = logging.getLogger("chatbridge.realtime")

AGENTS_GROUP = "agents"
# A publish that takes longer than this is abandoned: the request that published must not wait.
PUBLISH_TIMEOUT = 2.0


def agent_group_name(user_id: int) -> str:
    return f"agent.{user_id}"


def room_group_name(room_id: int) -> str:
    return f"room.{room_id}"


def publish_on_commit(group: str, message: dict[str, Any]) -> None:
    """Send `message` (with a `type` naming the consumer handler) to `group` once committed."""
    transaction.on_commit(lambda: publish(group, message))


def publish(group: str, message: dict[str, Any]) -> bool:
    layer = get_channel_layer()
    if layer is None:
        return False
    try:
        async_to_sync(_send)(layer, group, message)
    except Exception as error:  # noqa: BLE001 - any layer failure: the data is safe in PostgreSQL
        LAYER_PUBLISH_FAILURES.inc()
        logger.warning("channel layer publish to %s failed: %r", group, error)
        return False
    return True


async def _send(layer: Any, group: str, message: dict[str, Any]) -> None:
    await asyncio.wait_for(layer.group_send(group, message), timeout=PUBLISH_TIMEOUT)
