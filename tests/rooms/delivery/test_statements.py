"""Delivery's statements (rooms/delivery/statements.py) against the ORM paths they replace."""

import pytest
from django.utils import timezone

from rooms.delivery.statements import outbound_sent_update, outbound_sent_update_orm
from rooms.models import Message, Room
from tests.factories import CustomerFactory, OutboundFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _pending(uid: str, status: str = Message.Status.PENDING) -> Message:
    room = Room.objects.create(customer=CustomerFactory(uid=uid))
    return OutboundFactory(
        room=room,
        status=status,
        send_lease_until=timezone.now() if status == Message.Status.SENDING else None,
    )


def _state(message: Message) -> tuple:
    message.refresh_from_db()
    return message.status, message.wa_message_id is not None


@pytest.mark.parametrize("unsettled", [Message.Status.PENDING, Message.Status.SENDING])
@pytest.mark.parametrize("update", [outbound_sent_update, outbound_sent_update_orm])
def test_an_unsettled_message_becomes_sent_once(update, unsettled):
    message = _pending(f"57300800000{update is outbound_sent_update:d}", unsettled)

    assert update(message_id=message.pk, wa_message_id=f"wamid.{update.__name__}") is True
    assert _state(message) == (Message.Status.SENT, True)
    # A status webhook that overtook the send's own answer: nothing moves back.
    Message.objects.filter(pk=message.pk).update(status=Message.Status.DELIVERED)
    assert update(message_id=message.pk, wa_message_id="wamid.again") is False
    assert _state(message) == (Message.Status.DELIVERED, True)


def test_the_statement_and_the_orm_write_the_same_row():
    rows = []
    for index, update in enumerate([outbound_sent_update, outbound_sent_update_orm]):
        message = _pending(f"57300800001{index}", Message.Status.SENDING)
        update(message_id=message.pk, wa_message_id=f"wamid.same.{index}")
        rows.append(
            Message.objects.filter(pk=message.pk)
            .values("status", "error_code", "error_detail", "send_lease_until")
            .get()
        )
        assert Message.objects.get(pk=message.pk).updated_at >= message.updated_at

    assert rows[0] == rows[1]
