from dataclasses import asdict, dataclass
from typing import Any

from django.db import connection
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
from rooms.models import ClosureReason, Message, Room, RoomEvent
from users.models import Customer
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


def inbound_route_read(*, provider: str, uid: str) -> tuple[CustomerRef | None, RoomRef | None]:
    """On a cache miss: the customer and their open room from PostgreSQL in one read, without a
    lock (the store checks the room under its lock, as it checks a cached one)."""
    customers = connection.ops.quote_name(Customer._meta.db_table)
    rooms = connection.ops.quote_name(Room._meta.db_table)
    columns = "c.id, c.provider, c.uid, c.wa_id, c.user_id, c.name, c.public_id, r.id, r.status"
    sql = (
        f"SELECT {columns} FROM {customers} c LEFT JOIN {rooms} r"  # noqa: S608 - our tables
        " ON r.customer_id = c.id AND r.status <> %s"
        " WHERE c.provider = %s AND c.uid = %s ORDER BY r.id LIMIT 1"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Room.Status.CLOSED.value, provider, uid])
        row = cursor.fetchone()
    if row is None:
        return None, None
    customer = CustomerRef(*row[:6], public_id=str(row[6]))
    return customer, RoomRef(id=row[7], status=row[8]) if row[7] is not None else None


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


def agent_snapshot(*, user: Any) -> dict[str, Any]:
    """What a console needs on (re)connect: the agent, the queue, their rooms, the other agents
    (transfer targets) and the closure reasons."""
    from rooms.assignment import agent_load, agent_profile, agents_list
    from rooms.events import queue_data, room_detail

    profile = agent_profile(user)
    rooms = (
        Room.objects.filter(agent_id=user.pk, status=Room.Status.ASSIGNED)
        .select_related("customer")
        .order_by("assigned_at", "id")
    )
    return {
        "agent": {
            "id": user.pk,
            "name": user.get_full_name() or user.get_username(),
            "capacity": profile.capacity,
            "load": agent_load(user.pk),
            "available": profile.available,
        },
        "queue": queue_data(),
        "rooms": [room_detail(room) for room in rooms],
        "agents": [vars(agent) for agent in agents_list()],
        "closure_reasons": list(ClosureReason.objects.filter(active=True).values("id", "title")),
    }


def room_detail_for_agent(*, room_id: int, agent_id: int) -> dict[str, Any] | None:
    from rooms.events import room_detail

    room = (
        Room.objects.filter(pk=room_id, agent_id=agent_id, status=Room.Status.ASSIGNED)
        .select_related("customer")
        .first()
    )
    return room_detail(room) if room else None


def room_events_after(*, room_id: int, after: int, until: int | None = None) -> list[dict]:
    from rooms.events import event_frame

    events = RoomEvent.objects.filter(room_id=room_id, seq__gt=after).order_by("seq")
    if until is not None:
        events = events.filter(seq__lte=until)
    return [event_frame(event) for event in events[:1000]]


def room_seqs(*, room_ids: list[int]) -> dict[str, int]:
    return {
        str(room_id): seq
        for room_id, seq in Room.objects.filter(pk__in=room_ids).values_list("id", "event_seq")
    }
