"""Supervisors' alerts: a room waiting in the queue too long, a customer in an agent's room
unanswered too long; each raised once per room and cause however often (and by however many
jobs at once) the periodic job looks, shown to supervisors' consoles only and e-mailed to the
addresses in the admin; a mail server that fails does not lose the alert."""

import datetime as dt
import threading

import pytest
from django.core import mail
from django.db import connections
from django.utils import timezone

from rooms.desk.alerts import alerts_raise
from rooms.models import Alert, AlertRecipient, Message, Room
from rooms.periodic import periodic_run
from tests.factories import AgentFactory, CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def limits(settings):
    settings.QUEUE_ALERT_MINUTES = 10
    settings.AGENT_REPLY_ALERT_MINUTES = 5
    settings.AUTO_ASSIGN = False
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"


def ago(minutes):
    return timezone.now() - dt.timedelta(minutes=minutes)


def test_a_long_wait_in_the_queue_is_raised_once_and_e_mailed(settings):
    AlertRecipient.objects.create(email="supervision@banco.example")
    AlertRecipient.objects.create(email="antiguo@banco.example", active=False)
    waiting = Room.objects.create(
        customer=CustomerFactory(name="Ana"), status=Room.Status.QUEUED, queued_at=ago(12)
    )
    Room.objects.create(customer=CustomerFactory(), status=Room.Status.QUEUED, queued_at=ago(3))

    assert periodic_run()["alerts"] == 1
    assert periodic_run()["alerts"] == 0  # once per room and cause
    alert = Alert.objects.get()
    assert (alert.room_id, alert.cause, alert.data["minutes"]) == (waiting.pk, "queue_wait", 12)
    [sent] = mail.outbox
    assert sent.to == ["supervision@banco.example"]
    assert "12 min in the queue" in sent.subject


def test_an_unanswered_customer_in_an_agents_room_is_raised_and_an_answer_prevents_it():
    agent = AgentFactory()
    waiting = Room.objects.create(
        customer=CustomerFactory(),
        status=Room.Status.ASSIGNED,
        agent=agent,
        assigned_at=ago(30),
        last_customer_at=ago(8),
    )
    answered = Room.objects.create(
        customer=CustomerFactory(),
        status=Room.Status.ASSIGNED,
        agent=agent,
        assigned_at=ago(30),
        last_customer_at=ago(8),
    )
    Message.objects.create(
        room=answered, direction="out", author="agent", agent=agent, text="Ya reviso", status="sent"
    )
    just_taken = Room.objects.create(
        customer=CustomerFactory(),
        status=Room.Status.ASSIGNED,
        agent=agent,
        assigned_at=ago(1),  # the agent has had it a minute: not yet
        last_customer_at=ago(8),
    )

    assert alerts_raise() == 1
    alert = Alert.objects.get()
    assert (alert.room_id, alert.cause, alert.data["agent"]) == (
        waiting.pk,
        "agent_reply",
        agent.pk,
    )
    assert not Alert.objects.filter(room__in=[answered, just_taken]).exists()


def test_zero_minutes_turns_a_cause_off(settings):
    settings.QUEUE_ALERT_MINUTES = 0
    Room.objects.create(customer=CustomerFactory(), status=Room.Status.QUEUED, queued_at=ago(99))
    assert alerts_raise() == 0


def test_two_jobs_at_once_raise_one_alert():
    Room.objects.create(customer=CustomerFactory(), status=Room.Status.QUEUED, queued_at=ago(20))
    barrier = threading.Barrier(2)
    results = []

    def job():
        barrier.wait()
        try:
            results.append(alerts_raise())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [0, 1]
    assert Alert.objects.count() == 1


def test_a_failing_mail_server_keeps_the_alert(settings, caplog):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", 9, 2
    AlertRecipient.objects.create(email="supervision@banco.example")
    Room.objects.create(customer=CustomerFactory(), status=Room.Status.QUEUED, queued_at=ago(20))
    assert alerts_raise() == 1  # port 9 refuses the connection
    assert Alert.objects.count() == 1
    assert "could not be e-mailed" in caplog.text
