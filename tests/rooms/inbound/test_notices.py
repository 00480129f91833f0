"""WhatsApp notices that are not a customer's words get no bot reply: each is stored, and shown to
the agent where it matters. A number change keeps the customer, with their history."""

import pytest

from rooms.models import Message, Room
from tests.payloads import message, notification, text_from
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

OLD, NEW = "573001110003", "573001110004"


def _number_change(wa_id: str = OLD, new: str = NEW) -> dict:
    body = {
        "body": f"Ana changed from {wa_id} to {new}",
        "wa_id": new,
        "type": "user_changed_number",
    }
    return notification(messages=[message(wa_id, kind="system", body=body)])


def test_a_number_change_keeps_the_customer_and_is_not_answered(post_webhook, whatsapp, watson):
    """A system notice with `from` was answered "I can only read text"."""
    post_webhook(text_from(OLD, "hola"))
    customer = Customer.objects.get()
    sent = len(whatsapp.sent)

    assert post_webhook(_number_change()).status_code == 200

    assert len(whatsapp.sent) == sent  # no reply to a notice
    customer.refresh_from_db()
    assert (customer.uid, customer.wa_id) == (NEW, NEW)
    notice = Message.objects.get(type=Message.Type.SYSTEM)
    assert notice.room.customer_id == customer.pk
    assert notice.text == f"Ana changed from {OLD} to {NEW}"
    assert notice.handled_at is not None
    # The next message from the new number is the same customer, in the same room.
    post_webhook(text_from(NEW, "sigo aquí"))
    assert Customer.objects.count() == 1
    assert Room.objects.count() == 1
    assert whatsapp.sent_to(NEW)[-1]["text"] == "Dijiste: sigo aquí"
    assert watson.message_calls == 2


def test_a_number_change_to_a_known_customer_keeps_both(post_webhook):
    post_webhook(text_from(OLD, "hola"))
    post_webhook(text_from(NEW, "hola"))
    post_webhook(_number_change())
    assert sorted(Customer.objects.values_list("uid", flat=True)) == [OLD, NEW]


@pytest.mark.parametrize(
    "item",
    [
        {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]},
        {
            "type": "system",
            "system": {"body": "Identity changed", "type": "customer_identity_changed"},
        },
    ],
)
def test_notices_and_unsupported_items_get_no_bot_reply(post_webhook, whatsapp, watson, item):
    raw = message(OLD)
    raw.pop("text")
    raw.update(item)
    post_webhook(notification(messages=[raw]))
    assert whatsapp.sent == []
    assert watson.message_calls == 0
    stored = Message.objects.get()
    assert stored.handled_at is not None
    assert stored.type in (Message.Type.UNSUPPORTED, Message.Type.SYSTEM)


def test_a_notice_in_an_agents_room_reaches_the_agent(post_webhook, whatsapp):
    post_webhook(text_from(OLD, "agente"))
    sent = len(whatsapp.sent)
    post_webhook(_number_change())
    assert len(whatsapp.sent) == sent
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    event = room.events.filter(kind="message.new").latest("seq")
    assert event.data["type"] == Message.Type.SYSTEM
