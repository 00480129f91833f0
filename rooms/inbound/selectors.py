"""What the webhook reads to route a message: the customer and their open room."""

from dataclasses import asdict, dataclass
from typing import Any

from chatbridge.cache import active_room_cache_key, cache_get_many, customer_cache_key
from rooms.inbound.statements import open_route_read
from rooms.models import Message, Room, Survey
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


def inbound_route_get(
    *, provider: str, uid: str, line: str = ""
) -> tuple[CustomerRef | None, RoomRef | None]:
    """The customer and their open room on `line` from the cache, in one round trip; None for
    a miss."""
    customer_key = customer_cache_key(provider=provider, uid=uid)
    room_key = active_room_cache_key(provider=provider, uid=uid, line=line)
    values = cache_get_many([customer_key, room_key])
    customer = CustomerRef.from_cache(values[customer_key]) if customer_key in values else None
    room = RoomRef.from_cache(values[room_key]) if room_key in values else None
    return customer, room


def inbound_route_read(
    *, provider: str, uid: str, line: str = ""
) -> tuple[CustomerRef | None, RoomRef | None]:
    """On a cache miss: the customer and their open room on `line` from PostgreSQL in one read,
    without a lock (the store checks the room under its lock, as it checks a cached one)."""
    row = open_route_read(provider=provider, uid=uid, line=line)
    if row is None:
        return None, None
    customer_id, provider, uid, wa_id, user_id, name, public_id, room_id, room_status = row
    customer = CustomerRef(
        id=customer_id,
        provider=provider,
        uid=uid,
        wa_id=wa_id,
        user_id=user_id,
        name=name,
        public_id=str(public_id),
    )
    return customer, RoomRef(id=room_id, status=room_status) if room_id is not None else None


def room_open_get(*, customer_id: int, line: str = "", lock: bool = False) -> Room | None:
    """The customer's open room on the business number `line` (one at most: a constraint)."""
    rooms = Room.objects.filter(customer_id=customer_id, line=line).exclude(
        status=Room.Status.CLOSED
    )
    if lock:
        rooms = rooms.select_for_update()
    return rooms.first()


def survey_room_get(*, customer_id: int, line: str = "") -> int | None:
    """The closed room whose survey is asking this customer on `line`, if any (at most one: a
    constraint)."""
    asking = Survey.objects.filter(
        customer_id=customer_id, status=Survey.Status.ASKING, room__line=line
    )
    return asking.values_list("room_id", flat=True).first()


def quoted_message(*, wa_message_id: str, room_id: int) -> dict[str, Any]:
    """The message a customer's reply quotes, as the agent should read it beside the reply; a
    message of another customer's conversation is never shown (any earlier room of theirs is)."""
    room = Room.objects.filter(pk=room_id).values_list("customer_id", flat=True)
    quoted = (
        Message.objects.filter(wa_message_id=wa_message_id, room__customer_id__in=room)
        .values("id", "author", "type", "text")
        .first()
    )
    if quoted is None:
        return {"wa_message_id": wa_message_id[:255], "text": ""}  # older than chatbridge knows
    return {**quoted, "text": quoted["text"][:500]}
