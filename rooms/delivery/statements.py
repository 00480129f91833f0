"""Hand-written SQL of delivery, each statement beside the ORM it replaces (tests compare them)."""

from django.db import connection
from django.utils import timezone

from chatbridge.statements import quote
from rooms.models import Message

_UNSETTLED = [Message.Status.PENDING.value, Message.Status.SENDING.value]


def outbound_sent_update(*, message_id: int, wa_message_id: str) -> bool:
    """A message being sent is sent: once per reply, so a plain statement with no query building
    (docs/BENCHMARKS.md). False if it was settled already (a status got there first)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Message._meta.db_table)} SET wa_message_id = %s, status = %s,"
            " send_lease_until = NULL, updated_at = %s WHERE id = %s AND status IN (%s, %s)",
            [wa_message_id, Message.Status.SENT.value, timezone.now(), message_id, *_UNSETTLED],
        )
        return bool(cursor.rowcount)


def outbound_sent_update_orm(*, message_id: int, wa_message_id: str) -> bool:
    """`outbound_sent_update` through the ORM."""
    return bool(
        Message.objects.filter(pk=message_id, status__in=_UNSETTLED).update(
            wa_message_id=wa_message_id,
            status=Message.Status.SENT,
            send_lease_until=None,
            updated_at=timezone.now(),
        )
    )
