"""Hand-written SQL of delivery, each statement beside the ORM it replaces (tests compare them)."""

from django.db import connection
from django.utils import timezone

from chatbridge.statements import quote
from rooms.models import Message


def outbound_sent_update(*, message_id: int, wa_message_id: str) -> bool:
    """A pending message is sent: once per reply, so a plain statement with no query building
    (docs/BENCHMARKS.md). False if the message was no longer pending."""
    sent, pending = Message.Status.SENT.value, Message.Status.PENDING.value
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote(Message._meta.db_table)}"
            " SET wa_message_id = %s, status = %s, updated_at = %s WHERE id = %s AND status = %s",
            [wa_message_id, sent, timezone.now(), message_id, pending],
        )
        return bool(cursor.rowcount)


def outbound_sent_update_orm(*, message_id: int, wa_message_id: str) -> bool:
    """`outbound_sent_update` through the ORM."""
    return bool(
        Message.objects.filter(pk=message_id, status=Message.Status.PENDING).update(
            wa_message_id=wa_message_id, status=Message.Status.SENT, updated_at=timezone.now()
        )
    )
