from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Count, Max, Q

from chatbridge.cache import (
    ROOM_METRICS_TTL,
    active_room_cache_key,
    cache_get,
    cache_get_many,
    cache_set,
    customer_cache_key,
    room_metrics_cache_key,
)
from rooms.models import Message, Room
from users.selectors import CustomerRef


@dataclass(frozen=True)
class RoomRef:
    """A customer's open room as the cache holds it. The message write re-checks it."""

    id: int
    status: str

    @classmethod
    def from_cache(cls, value: Any) -> "RoomRef | None":
        try:
            return cls(**value)
        except TypeError:
            return None

    def to_cache(self) -> dict[str, Any]:
        return asdict(self)


def inbound_route_get(*, provider: str, uid: str) -> tuple[CustomerRef | None, RoomRef | None]:
    """The customer and their open room from the cache, in one round trip; None for a miss."""
    customer_key = customer_cache_key(provider=provider, uid=uid)
    room_key = active_room_cache_key(provider=provider, uid=uid)
    values = cache_get_many([customer_key, room_key])
    customer = CustomerRef.from_cache(values[customer_key]) if customer_key in values else None
    room = RoomRef.from_cache(values[room_key]) if room_key in values else None
    return customer, room


def room_open_get(*, customer_id: int, lock: bool = False) -> Room | None:
    rooms = Room.objects.filter(customer_id=customer_id).exclude(status=Room.Status.CLOSED)
    if lock:
        rooms = rooms.select_for_update()
    return rooms.first()


def room_metrics_get(*, room_id: int) -> dict[str, Any]:
    """Message counts for operators, cached briefly."""
    key = room_metrics_cache_key(room_id=room_id)
    cached = cache_get(key)
    if cached is not None:
        return cached
    metrics = Message.objects.filter(room_id=room_id).aggregate(
        messages=Count("id"),
        from_customer=Count("id", filter=Q(author=Message.Author.CUSTOMER)),
        from_bot=Count("id", filter=Q(author=Message.Author.BOT)),
        from_agents=Count("id", filter=Q(author=Message.Author.AGENT)),
        failed_sends=Count("id", filter=Q(status=Message.Status.FAILED)),
        last_message_at=Max("created_at"),
    )
    cache_set(key, metrics, ttl=ROOM_METRICS_TTL)
    return metrics
