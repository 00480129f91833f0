"""The customer sees their message read, and "typing…" while Watson thinks or an agent writes:
one call at most per message, never holding up or failing the answer."""

import pytest
from asgiref.sync import sync_to_async

from rooms.models import Message
from tests.factories import AgentFactory
from tests.payloads import message, notification, text_from
from tests.rooms.desk.test_consumers import FRAME_WAIT, connect, queued_room, receive_until

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573005550001"


@pytest.fixture
def read_marks(settings):
    settings.WHATSAPP_READ_MARKS = True
    settings.WHATSAPP_TYPING_INDICATOR = True


def test_the_bot_marks_the_message_read_with_typing_before_answering(
    post_webhook, whatsapp, read_marks
):
    post_webhook(text_from(WA, "hola", wamid="wamid.read-1"))
    assert whatsapp.read_receipts == [
        {
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": "wamid.read-1",
            "typing_indicator": {"type": "text"},
        }
    ]
    assert whatsapp.sent_to(WA)[0]["text"].startswith("¡Hola!")
    # The read mark went first: the customer saw "typing…" while Watson thought.
    paths = [r["json"].get("status") == "read" for r in whatsapp.requests if "json" in r]
    assert paths[0] is True


def test_what_does_not_go_to_watson_is_marked_read_without_typing(
    post_webhook, whatsapp, read_marks
):
    audio = message(WA, kind="audio", body={"id": "1", "mime_type": "audio/ogg"})
    post_webhook(notification(messages=[audio]))
    (mark,) = whatsapp.read_receipts
    assert "typing_indicator" not in mark


def test_a_refused_read_mark_does_not_stop_the_answer(post_webhook, whatsapp, read_marks):
    whatsapp.fail_with_code(131000, http_status=500, count=1)  # taken by the read mark
    post_webhook(text_from(WA, "hola"))
    assert whatsapp.sent_to(WA)[0]["text"].startswith("¡Hola!")
    assert Message.objects.get(direction="out").status == Message.Status.SENT


def test_switched_off_no_read_mark_is_sent(post_webhook, whatsapp, settings):
    settings.WHATSAPP_READ_MARKS = False
    post_webhook(text_from(WA, "hola"))
    assert whatsapp.read_receipts == []


@pytest.mark.asyncio
async def test_an_agent_typing_marks_the_latest_message_once(
    fake_vendors, whatsapp, no_auto_assign, read_marks, post_webhook
):
    room = await queued_room(WA)
    agent = await sync_to_async(AgentFactory)(username="ana")
    communicator = await connect(agent)
    await communicator.send_json_to({"type": "take", "room": room.pk, "id": 1})
    await receive_until(communicator, lambda f: f["type"] == "ack", timeout=FRAME_WAIT)
    whatsapp.reset()
    for index in range(3):
        await communicator.send_json_to({"type": "typing", "room": room.pk, "id": 10 + index})
    await communicator.send_json_to({"type": "sync", "rooms": {}, "id": 20})  # in order
    await receive_until(communicator, lambda f: f.get("id") == 20, timeout=FRAME_WAIT)
    assert len(whatsapp.read_receipts) == 1  # once for the message, however long the typing
    assert whatsapp.read_receipts[0]["typing_indicator"] == {"type": "text"}
    latest = await Message.objects.filter(direction="in").alatest("id")
    assert whatsapp.read_receipts[0]["message_id"] == latest.wa_message_id
    await communicator.disconnect()
