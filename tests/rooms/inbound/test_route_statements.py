"""The webhook's routing read and message INSERT (rooms/inbound/statements.py) against the ORM
paths they replace; the one-round-trip store is compared in test_statements.py."""

import pytest
from django.utils import timezone

from rooms.inbound.statements import message_insert, open_route_read, open_route_read_orm
from rooms.models import Message, Room
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("room_status", [None, Room.Status.CLOSED, Room.Status.BOT, "two"])
def test_the_route_read_is_the_orm_read(room_status):
    customer = CustomerFactory(uid="573009100001")
    if room_status is not None:
        Room.objects.create(customer=customer, status=Room.Status.CLOSED)
    if room_status in (Room.Status.BOT, "two"):
        Room.objects.create(customer=customer, status=Room.Status.BOT)

    row = open_route_read(provider="whatsapp", uid=customer.uid)

    assert row == open_route_read_orm(provider="whatsapp", uid=customer.uid)
    assert row[:3] == (customer.pk, "whatsapp", customer.uid)
    assert (row[8] is None) == (room_status in (None, Room.Status.CLOSED))


def test_no_customer_reads_nothing_either_way():
    assert open_route_read(provider="whatsapp", uid="5730000000") is None
    assert open_route_read_orm(provider="whatsapp", uid="5730000000") is None


def test_the_insert_stores_what_the_orm_saves_and_refuses_a_duplicate():
    room = Room.objects.create(customer=CustomerFactory())
    now = timezone.now()

    def row(wamid: str) -> Message:
        return Message(
            room=room,
            direction=Message.Direction.INBOUND,
            author=Message.Author.CUSTOMER,
            type=Message.Type.TEXT,
            text="hola",
            payload={"id": wamid},
            wa_message_id=wamid,
            wa_timestamp=now,
        )

    inserted = message_insert(row("wamid.a"))
    saved = row("wamid.b")
    saved.save()

    columns = ["room_id", "direction", "author", "type", "text", "status", "wa_timestamp"]
    ours, theirs = (Message.objects.values(*columns).get(pk=m.pk) for m in (inserted, saved))
    assert ours == theirs
    assert message_insert(row("wamid.a")) is None  # a redelivery: the database says duplicate
    assert Message.objects.filter(wa_message_id="wamid.a").count() == 1
