"""Races the original system lost: duplicate deliveries and bursts from one customer.

Threads in this process first (each with its own database connection, as Daphne's request
threads have); tests/test_processes.py repeats the races across separate server processes.
"""

import threading
import time

import pytest
from django.db import connections
from django.test import Client

from rooms.models import Message, Room
from tests.payloads import message, notification, signed_post, text_from
from users.models import Customer
from watson.models import WatsonSession

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573009998877"


def run_at_once(payloads: list[dict]) -> list[int]:
    """POST every payload from its own thread, released together; returns the status codes."""
    barrier = threading.Barrier(len(payloads))
    codes: list[int] = [0] * len(payloads)

    def post(index: int, payload: dict) -> None:
        client = Client()
        barrier.wait()
        try:
            codes[index] = signed_post(client, payload).status_code
        finally:
            connections.close_all()

    threads = [threading.Thread(target=post, args=pair) for pair in enumerate(payloads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return codes


def test_same_message_delivered_twice_at_once_is_processed_once(whatsapp, watson):
    payload = text_from(WA, "hola", wamid="wamid.twice")

    codes = run_at_once([payload, payload])

    assert codes == [200, 200]
    assert Message.objects.filter(direction="in").count() == 1
    assert Room.objects.count() == 1
    assert watson.message_calls == 1
    assert len(whatsapp.sent) == 1


def test_burst_from_one_customer_makes_one_room_one_session_ordered_replies(whatsapp, watson):
    base = int(time.time())
    payloads = [
        notification(messages=[message(WA, f"mensaje {i}", timestamp=base + i)]) for i in range(10)
    ]

    codes = run_at_once(payloads)

    assert codes == [200] * 10
    assert Customer.objects.count() == 1
    assert Room.objects.count() == 1
    assert WatsonSession.objects.count() == 1
    assert watson.sessions_created == 1
    inbound = list(
        Message.objects.filter(direction="in").order_by("id").values_list("text", flat=True)
    )
    assert sorted(inbound) == sorted(f"mensaje {i}" for i in range(10))
    # Replies leave in the order the messages were stored, one per message.
    replies = [item["text"] for item in whatsapp.sent_to(WA)]
    assert replies == [f"Dijiste: {text}" for text in inbound]
    assert Message.objects.filter(direction="in", handled_at__isnull=True).count() == 0


def test_first_messages_of_many_new_customers_at_once(whatsapp):
    payloads = [text_from(f"5730055500{i:02d}", "hola") for i in range(12)]
    assert run_at_once(payloads) == [200] * 12
    assert Customer.objects.count() == 12
    assert Room.objects.count() == 12
    assert len(whatsapp.sent) == 12
