"""Hand-written SQL of the rooms' ground (events), each statement beside the ORM it replaces.

The ORM twin of each statement is what the statement must equal; tests/rooms/test_statements.py
runs both and compares.
"""

from django.db import connection
from django.db.models import F

from chatbridge.statements import quote
from rooms.models import Room


def event_seq_next(*, room_id: int) -> int:
    """The room's next event number, taken under the room's row lock: one round trip."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Room._meta.db_table)} SET event_seq = event_seq + 1"
            " WHERE id = %s RETURNING event_seq",
            [room_id],
        )
        (seq,) = cursor.fetchone()
    return seq


def event_seq_next_orm(*, room_id: int) -> int:
    """`event_seq_next` through the ORM: an UPDATE, then a read (two round trips)."""
    Room.objects.filter(pk=room_id).update(event_seq=F("event_seq") + 1)
    return Room.objects.values_list("event_seq", flat=True).get(pk=room_id)
