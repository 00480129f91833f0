"""The periodic job: inactivity and business-hours closing, safe in several processes."""

import datetime as dt
import io
import threading

import pytest
from django.core.management import call_command
from django.db import connections
from django.utils import timezone

from rooms.conversation.lifecycle import (
    outside_business_hours,
    rooms_close_inactive,
    rooms_close_out_of_hours,
)
from rooms.models import Room
from tests.payloads import text_from

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573008880001"


def age(room: Room, *, customer_minutes: float, activity_minutes: float) -> None:
    now = timezone.now()
    Room.objects.filter(pk=room.pk).update(
        last_customer_at=now - dt.timedelta(minutes=customer_minutes),
        last_activity_at=now - dt.timedelta(minutes=activity_minutes),
    )


def test_a_customer_silent_after_our_answer_is_closed(post_webhook, whatsapp):
    post_webhook(text_from(WA, "hola"))
    room = Room.objects.get()
    age(room, customer_minutes=9, activity_minutes=8)  # the bot answered, then silence

    out = io.StringIO()
    call_command("periodic", stdout=out)

    room.refresh_from_db()
    assert (room.status, room.closed_reason) == ("closed", "Inactividad del cliente")
    assert "closed 1 inactive" in out.getvalue()
    assert whatsapp.sent[-1]["text"].startswith("Gracias por escribirnos.")
    # The next message opens a new room with the bot.
    post_webhook(text_from(WA, "hola de nuevo"))
    assert Room.objects.exclude(pk=room.pk).get().status == "bot"


def test_recent_activity_queued_rooms_and_customers_awaiting_us_stay_open(post_webhook):
    post_webhook(text_from("573008880002", "hola"))  # recent
    post_webhook(text_from("573008880003", "agente"))  # queued, waiting for an agent
    post_webhook(text_from("573008880004", "hola"))
    _recent, queued, awaiting = Room.objects.order_by("id")
    age(queued, customer_minutes=60, activity_minutes=59)
    # The customer wrote last (an agent has not answered): not the customer's inactivity.
    Room.objects.filter(pk=awaiting.pk).update(status="assigned")
    age(awaiting, customer_minutes=30, activity_minutes=30)

    assert rooms_close_inactive() == 0
    assert set(Room.objects.values_list("status", flat=True)) == {"bot", "queued", "assigned"}


def test_inactivity_job_in_several_processes_closes_each_room_once(post_webhook, whatsapp):
    for index in range(6):
        post_webhook(text_from(f"57300888010{index}", "hola"))
    for room in Room.objects.all():
        age(room, customer_minutes=20, activity_minutes=19)
    sent_before = len(whatsapp.sent)
    results: list[int] = []

    def run() -> None:
        try:
            results.append(rooms_close_inactive())
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sum(results) == 6
    assert Room.objects.filter(status="closed").count() == 6
    assert len(whatsapp.sent) - sent_before == 6  # one closing text per room


def test_business_hours(settings, post_webhook):
    settings.BUSINESS_HOURS = "07:00-22:00"
    settings.BUSINESS_TIMEZONE = "America/Bogota"
    bogota_noon = dt.datetime(2026, 11, 27, 17, 0, tzinfo=dt.UTC)  # 12:00 in Bogotá
    bogota_night = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)  # 23:00 in Bogotá
    assert not outside_business_hours(bogota_noon)
    assert outside_business_hours(bogota_night)

    post_webhook(text_from(WA, "hola"))
    assert rooms_close_out_of_hours(now=bogota_noon) == 0
    assert rooms_close_out_of_hours(now=bogota_night) == 1
    assert Room.objects.get().closed_reason == "Fuera del horario de atención"


def test_no_business_hours_means_always_open(settings):
    settings.BUSINESS_HOURS = ""
    assert not outside_business_hours(timezone.now())
