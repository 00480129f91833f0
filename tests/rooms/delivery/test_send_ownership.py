"""A send has an owner and a state: nobody sends what someone else is sending, and a send whose
outcome is unknown is settled by WhatsApp's status, or sent again only after the grace."""

import datetime as dt
import io
import threading

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from rooms.delivery.services import send_reference, turn_target
from rooms.delivery.tasks import message_deliver
from rooms.models import Message, Room
from tests.factories import CustomerFactory, OutboundFactory
from tests.payloads import notification, status, text_from
from tests.servers import wait_until
from users.selectors import CustomerRef

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573007770001"
ECHO = "Dijiste: ¿me oyes?"


def _resume() -> str:
    out = io.StringIO()
    call_command("turns_resume", older_than=0, stdout=out)
    return out.getvalue()


def _texts(whatsapp) -> list[str]:
    return [m["text"] for m in whatsapp.sent_to(WA)]


def _status_with_reference(wamid: str, name: str, message: Message) -> dict:
    item = status(wamid, name)
    item["biz_opaque_callback_data"] = send_reference(message.pk)
    return notification(statuses=[item])


def _unanswered_send(post_webhook, whatsapp, settings) -> Message:
    """A bot reply whose send got no answer: WhatsApp answers after the client gave up."""
    settings.WHATSAPP_TIMEOUT = 0.5
    whatsapp.delay = 1.0
    try:
        post_webhook(text_from(WA, "¿me oyes?"))
    finally:
        whatsapp.delay = 0
    wait_until(lambda: _texts(whatsapp), what="the fake to record the late send")
    return Message.objects.get(direction="out")


def _lease_ended(message: Message, seconds_ago: float) -> None:
    Message.objects.filter(pk=message.pk).update(
        send_lease_until=timezone.now() - dt.timedelta(seconds=seconds_ago)
    )


def test_every_send_names_its_message_for_the_statuses(post_webhook, whatsapp):
    post_webhook(text_from(WA, "¿me oyes?"))
    reply = Message.objects.get(direction="out")
    sent = whatsapp.sent_to(WA)[0]["body"]
    assert sent["biz_opaque_callback_data"] == f"chatbridge:{reply.pk}"
    assert reply.status == Message.Status.SENT
    assert (reply.send_attempts, reply.send_lease_until) == (1, None)


def test_an_unanswered_send_is_neither_failed_nor_sent_again_at_once(
    post_webhook, whatsapp, settings
):
    reply = _unanswered_send(post_webhook, whatsapp, settings)
    assert reply.status == Message.Status.SENDING
    assert "timeout" in reply.error_detail
    assert Room.objects.get().status == Room.Status.BOT  # not a failure: no hand-off
    assert "resent 0" in _resume()  # its lease has not ended
    _lease_ended(reply, settings.WHATSAPP_SEND_GRACE_SECONDS - 5)
    assert "resent 0" in _resume()  # nor the grace for its status
    assert _texts(whatsapp) == [ECHO]


def test_a_status_naming_our_message_settles_a_send_whose_answer_was_lost(
    post_webhook, whatsapp, settings
):
    reply = _unanswered_send(post_webhook, whatsapp, settings)
    wamid = whatsapp.sent_to(WA)[0]["id"]
    assert post_webhook(_status_with_reference(wamid, "delivered", reply)).status_code == 200
    reply.refresh_from_db()
    assert (reply.status, reply.wa_message_id) == (Message.Status.DELIVERED, wamid)
    _lease_ended(reply, settings.WHATSAPP_SEND_GRACE_SECONDS + 60)
    assert "resent 0" in _resume()
    assert _texts(whatsapp) == [ECHO]
    # Later statuses find it by WhatsApp's id as usual.
    post_webhook(notification(statuses=[status(wamid, "read")]))
    reply.refresh_from_db()
    assert reply.status == Message.Status.READ


def test_with_no_status_after_the_grace_the_message_is_sent_once_more(
    post_webhook, whatsapp, settings
):
    reply = _unanswered_send(post_webhook, whatsapp, settings)
    _lease_ended(reply, settings.WHATSAPP_SEND_GRACE_SECONDS + 1)
    assert "resent 1" in _resume()
    reply.refresh_from_db()
    assert (reply.status, reply.send_attempts) == (Message.Status.SENT, 2)
    assert "resent 0" in _resume()
    assert _texts(whatsapp) == [ECHO, ECHO]  # the price of a lost status: README, "Delivery"


def test_a_send_left_unknown_too_often_is_given_up_not_repeated(post_webhook, whatsapp, settings):
    reply = _unanswered_send(post_webhook, whatsapp, settings)
    Message.objects.filter(pk=reply.pk).update(send_attempts=settings.WHATSAPP_SEND_MAX_TRIES)
    _lease_ended(reply, settings.WHATSAPP_SEND_GRACE_SECONDS + 1)
    assert "resent 0" in _resume()
    reply.refresh_from_db()
    assert reply.status == Message.Status.FAILED
    assert "not sent again" in reply.error_detail
    assert _texts(whatsapp) == [ECHO]


def test_recovery_never_sends_a_message_someone_is_sending(whatsapp):
    """An agent's message whose send task runs late and slowly, and recovery running meanwhile
    (the message is older than its cutoff): it was sent twice."""
    customer = CustomerFactory(uid=WA, wa_id=WA)
    room = Room.objects.create(customer=customer, status=Room.Status.ASSIGNED)
    message = OutboundFactory(
        room=room, author=Message.Author.AGENT, text="Le escribo desde el banco"
    )
    target = turn_target(CustomerRef.of(customer))

    def run_task() -> None:
        try:
            message_deliver.call(message_id=message.pk, target=target)
        finally:
            connection.close()

    whatsapp.delay = 2.0
    task = threading.Thread(target=run_task)
    task.start()
    try:
        wait_until(lambda: whatsapp.in_flight, what="the task's send in flight")
        assert "resent 0" in _resume()
    finally:
        task.join(timeout=20)
        whatsapp.delay = 0
    message.refresh_from_db()
    assert message.status == Message.Status.SENT
    assert _texts(whatsapp) == ["Le escribo desde el banco"]
