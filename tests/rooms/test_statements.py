"""The ground's statement (rooms/statements.py) against the ORM path it replaces."""

import threading

import pytest
from django.db import connections, transaction

from rooms.models import Room
from rooms.statements import event_seq_next, event_seq_next_orm
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("next_seq", [event_seq_next, event_seq_next_orm])
def test_each_call_takes_the_next_number(next_seq):
    room = Room.objects.create(customer=CustomerFactory())

    assert [next_seq(room_id=room.pk) for _ in range(3)] == [1, 2, 3]
    assert Room.objects.get(pk=room.pk).event_seq == 3


def test_numbers_taken_at_once_on_two_connections_never_repeat():
    """The statement's row lock is what makes the numbers gapless and unique across processes."""
    room = Room.objects.create(customer=CustomerFactory())
    taken: list[int] = []
    barrier = threading.Barrier(4)

    def take() -> None:
        try:
            barrier.wait()
            for _ in range(10):
                with transaction.atomic():
                    taken.append(event_seq_next(room_id=room.pk))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=take) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(taken) == list(range(1, 41))
    assert event_seq_next_orm(room_id=room.pk) == 41
