"""Hand-written SQL of the bot's turn, each statement beside the ORM it replaces.

A bot reply's statements go as one string (chatbridge/statements.py: one implicit transaction,
one round trip). The ORM path that does the same work is `rooms.bot.turns.reply_store_orm` (a
hand-off, or SQLite); tests/rooms/bot/test_statements.py runs both and compares the rows.
"""

import datetime as dt

from django.conf import settings

from chatbridge.statements import insert_select, quote, run_statements
from rooms.models import Message, Room
from watson.models import WatsonSession


def unanswered_read(*, room_id: int, up_to: int) -> tuple[str, list]:
    """The room's customer messages up to `up_to` whose turn has not finished, oldest first, as
    (id, type, text, wa_message_id): SQL and parameters, for the turn lock's own round trip. The
    ORM read is `unanswered_read_orm`."""
    sql = (
        f"SELECT id, type, text, wa_message_id FROM {quote(Message._meta.db_table)} "
        "WHERE room_id = %s AND direction = %s AND handled_at IS NULL AND id <= %s ORDER BY id"
    )
    return sql, [room_id, Message.Direction.INBOUND.value, up_to]


def unanswered_read_orm(*, room_id: int, up_to: int) -> list[tuple]:
    return list(
        Message.objects.filter(
            room_id=room_id,
            direction=Message.Direction.INBOUND,
            handled_at__isnull=True,
            id__lte=up_to,
        )
        .order_by("id")
        .values_list("id", "type", "text", "wa_message_id")
    )


def session_touch(*, room_id: int, now: dt.datetime) -> tuple[str, list]:
    """`watson.services.watson_session_touch` as one statement, to send with the reply's."""
    sql = (
        f"UPDATE {quote(WatsonSession._meta.db_table)}"
        " SET last_used_at = %s, expires_at = %s WHERE room_id = %s"
    )
    return sql, [now, now + dt.timedelta(seconds=settings.WATSON_SESSION_TIMEOUT), room_id]


def reply_store(
    *,
    room_id: int,
    inbound_id: int,
    outbound: list[Message],
    now: dt.datetime,
    touch_session: bool,
) -> list[Message] | None:
    """A bot reply in one round trip: the room touched if it is still the bot's, the customer's
    message marked answered, the replies (unsaved) inserted in order, the Watson session moved
    on. The room's UPDATE comes first and locks its row whatever its status (it touches the row
    only if it is the bot's), so every statement after it sees the status it returned; the
    replies are stored only if that is the bot's. The stored replies (their `pk` set), or None
    if the room had left the bot."""
    room_table = quote(Room._meta.db_table)
    statements = [
        f"""UPDATE {room_table}
        SET last_activity_at = CASE WHEN status = %s THEN %s ELSE last_activity_at END
        WHERE id = %s RETURNING status""",
        f"UPDATE {quote(Message._meta.db_table)} SET handled_at = %s WHERE id = %s",
    ]
    bot = Room.Status.BOT.value
    params: list = [bot, now, room_id, now, inbound_id]
    for message in outbound:  # one INSERT each, in order: their ids follow the reply's order
        insert, values = insert_select(
            Message, message, source=f"{room_table} WHERE id = %s AND status = %s"
        )
        statements.append(insert + " RETURNING id")
        params += [*values, room_id, bot]
    if touch_session:
        touch, touch_params = session_touch(room_id=room_id, now=now)
        statements.append(touch)
        params += touch_params
    results = run_statements(statements, params)
    if results[0] != [(bot,)]:
        return None
    for message, rows in zip(outbound, results[2 : 2 + len(outbound)], strict=True):
        message.pk = rows[0][0]
        message._state.adding = False
    return outbound
