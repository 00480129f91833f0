"""The periodic job: inactivity and business-hours closing, safe in several processes."""

import datetime as dt
import io
import threading
import time

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from rooms.conversation.lifecycle import (
    outside_business_hours,
    rooms_close_inactive,
    rooms_close_out_of_hours,
)
from rooms.desk.assignment import room_return_to_bot, room_take, room_transfer
from rooms.desk.services import agent_message_send
from rooms.models import Message, Room
from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import AppProcess, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573008880001"


def age(room: Room, *, customer_minutes: float, activity_minutes: float) -> None:
    now = timezone.now()
    Room.objects.filter(pk=room.pk).update(
        last_customer_at=now - dt.timedelta(minutes=customer_minutes),
        last_activity_at=now - dt.timedelta(minutes=activity_minutes),
    )


def back_in_time(room: Room, *, minutes: float) -> None:
    """The whole conversation so far happened `minutes` earlier, in the same order."""
    delta = dt.timedelta(minutes=minutes)
    Room.objects.filter(pk=room.pk).update(
        opened_at=F("opened_at") - delta,
        queued_at=F("queued_at") - delta,
        assigned_at=F("assigned_at") - delta,
        last_customer_at=F("last_customer_at") - delta,
        last_activity_at=F("last_activity_at") - delta,
    )
    Message.objects.filter(room=room).update(created_at=F("created_at") - delta)


def handed_to_an_agent(post_webhook, wa_id: str = WA, *, agent_name: str = "ana") -> Room:
    """The customer asks for a human, the bot hands off ("Te comunico con un asesor"), an agent
    takes the room."""
    post_webhook(text_from(wa_id, "agente"))
    room = Room.objects.get(customer__uid=wa_id)
    return room_take(room_id=room.pk, agent=AgentFactory(username=agent_name))


def periodic_in_a_process() -> str:
    """`manage.py periodic`, once, as deployed: its own process on the test database."""
    process = AppProcess.manage("periodic", BUSINESS_HOURS="").start()
    assert process.process is not None
    assert process.process.wait(timeout=60) == 0, process.output()
    return process.output()


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


def test_a_customer_waiting_for_the_agent_to_write_is_not_closed(post_webhook, whatsapp):
    room = handed_to_an_agent(post_webhook)
    # The bot's hand-off text is the room's last word: ours, but a promise of a human.
    assert room.messages.latest("id").author == Message.Author.BOT
    post_webhook(text_from("573008880009", "hola"))  # a bot room, the bot answered last
    for each in Room.objects.all():
        back_in_time(each, minutes=30)

    output = periodic_in_a_process()

    assert "closed 1 inactive" in output
    room.refresh_from_db()
    assert (room.status, room.closed_reason) == ("assigned", "")
    assert Room.objects.get(customer__uid="573008880009").status == "closed"
    assert settings.ROOM_CLOSED_MESSAGE not in [m["text"] for m in whatsapp.sent_to(WA)]


def test_a_customer_silent_after_the_agent_wrote_is_closed(post_webhook, whatsapp):
    room = handed_to_an_agent(post_webhook)
    agent_message_send(room_id=room.pk, agent=room.agent, text="Hola, soy Ana. ¿Tu número?")
    back_in_time(room, minutes=8)

    output = periodic_in_a_process()

    assert "closed 1 inactive" in output
    room.refresh_from_db()
    assert (room.status, room.closed_reason) == ("closed", "Inactividad del cliente")
    assert whatsapp.sent_to(WA)[-1]["text"] == settings.ROOM_CLOSED_MESSAGE


def test_a_customer_who_answered_the_agent_is_not_closed(post_webhook):
    room = handed_to_an_agent(post_webhook)
    agent_message_send(room_id=room.pk, agent=room.agent, text="¿Tu número de cuenta?")
    post_webhook(text_from(WA, "un momento, lo busco"))
    back_in_time(room, minutes=30)

    assert rooms_close_inactive() == 0
    assert Room.objects.get().status == "assigned"


def test_after_a_transfer_only_the_new_agents_words_count(post_webhook):
    room = handed_to_an_agent(post_webhook)
    agent_message_send(room_id=room.pk, agent=room.agent, text="Te paso con cartera.")
    bea = AgentFactory(username="bea")
    room_transfer(room_id=room.pk, agent=room.agent, to_agent_id=bea.pk)
    back_in_time(room, minutes=30)
    assert rooms_close_inactive() == 0  # the customer is waiting for Bea

    agent_message_send(room_id=room.pk, agent=bea, text="Hola, soy Bea, de cartera.")
    back_in_time(room, minutes=8)
    assert rooms_close_inactive() == 1


def test_a_room_returned_to_the_bot_follows_the_bots_rule(post_webhook):
    room = handed_to_an_agent(post_webhook)
    agent_message_send(room_id=room.pk, agent=room.agent, text="Te dejo con el asistente.")
    room_return_to_bot(room_id=room.pk, agent=room.agent)
    back_in_time(room, minutes=8)

    assert rooms_close_inactive() == 1


def a_session_waits_for_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")  # pg_stat_activity is per transaction
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0


def test_a_customer_writing_while_the_job_closes_keeps_the_room(post_webhook):
    room = handed_to_an_agent(post_webhook)
    agent_message_send(room_id=room.pk, agent=room.agent, text="¿Tu número de cuenta?")
    back_in_time(room, minutes=8)
    results: list[int] = []

    def run() -> None:
        try:
            results.append(rooms_close_inactive())
        finally:
            connections.close_all()

    closer = threading.Thread(target=run)
    with transaction.atomic():  # the customer's message being stored holds the room's row
        now = timezone.now()
        Room.objects.filter(pk=room.pk).update(last_customer_at=now, last_activity_at=now)
        closer.start()
        wait_until(a_session_waits_for_a_lock, what="the job waiting for the room's row")
    closer.join()

    assert results == [0]
    assert Room.objects.get().status == "assigned"


def test_business_hours(settings, post_webhook):
    settings.BUSINESS_HOURS = "07:00-22:00"
    settings.BUSINESS_TIMEZONE = "America/Bogota"
    bogota_noon = dt.datetime(2026, 11, 27, 17, 0, tzinfo=dt.UTC)  # 12:00 in Bogotá
    bogota_night = dt.datetime(2026, 11, 28, 4, 0, tzinfo=dt.UTC)  # 23:00 in Bogotá
    assert not outside_business_hours(bogota_noon)
    assert outside_business_hours(bogota_night)

    post_webhook(text_from(WA, "hola"))
    # The bot keeps answering at night: its room is not closed by the clock.
    assert rooms_close_out_of_hours(now=bogota_night) == 0
    assert Room.objects.get().status == "bot"


def _closed_hours_now(settings) -> None:
    """Business hours that do not include the present moment."""
    settings.BUSINESS_TIMEZONE = "America/Bogota"
    hour = timezone.now().astimezone(dt.timezone(dt.timedelta(hours=-5))).hour
    settings.BUSINESS_HOURS = f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"


def test_a_hand_off_at_night_waits_for_the_morning_and_the_customer_is_told(
    settings, post_webhook, whatsapp
):
    """Outside the hours every open room was closed at the stroke of the hour, mid-conversation
    included, and a customer handed off at night was never told why nobody answered."""
    _closed_hours_now(settings)
    settings.OUT_OF_HOURS = "queue"
    post_webhook(text_from(WA, "agente"))
    room = Room.objects.get()
    assert room.status == "queued"
    opens, closes = settings.BUSINESS_HOURS.split("-")
    (told,) = whatsapp.wait_for_sent(1, to=WA)  # the hours, not "an agent will be with you"
    assert told["text"] == (
        f"Nuestros asesores atienden de {opens} a {closes}. Tu conversación queda en la fila: "
        "te responderemos apenas abramos."
    )
    time.sleep(0.3)
    assert len(whatsapp.sent_to(WA)) == 1  # and nothing contradicting it
    assert rooms_close_out_of_hours() == 0  # it waits
    assert Room.objects.get().status == "queued"


def test_with_out_of_hours_close_the_customer_is_asked_to_write_again(
    settings, post_webhook, whatsapp
):
    _closed_hours_now(settings)
    settings.OUT_OF_HOURS = "close"
    post_webhook(text_from(WA, "agente"))
    room = Room.objects.get()
    assert (room.status, room.closed_reason) == ("closed", "Fuera del horario de atención")
    (told,) = whatsapp.wait_for_sent(1, to=WA)
    assert told["text"].endswith("Escríbenos de nuevo en ese horario.")
    time.sleep(0.3)
    assert len(whatsapp.sent_to(WA)) == 1  # not "an agent will be with you", nor a second close


def test_agents_finish_their_conversations_after_hours(settings, post_webhook):
    room = handed_to_an_agent(post_webhook)
    _closed_hours_now(settings)
    settings.OUT_OF_HOURS = "close"
    assert rooms_close_out_of_hours() == 0
    assert Room.objects.get(pk=room.pk).status == "assigned"


def test_no_business_hours_means_always_open(settings):
    settings.BUSINESS_HOURS = ""
    assert not outside_business_hours(timezone.now())


def test_a_customer_sent_a_template_has_a_day_to_answer_before_inactivity(post_webhook, whatsapp):
    """The template is sent because the customer's 24 hours had passed: closing the room seven
    minutes later sent their answer to a new room with the bot, away from the agent."""
    from rooms.desk.services import agent_template_send
    from rooms.models import MessageTemplate

    room = handed_to_an_agent(post_webhook)
    whatsapp.templates = {("seguimiento_caso", "es")}
    template = MessageTemplate.objects.create(
        name="seguimiento_caso", language="es", body="Hola {{1}}", parameters=["customer_name"]
    )
    back_in_time(room, minutes=60 * 25)  # the window has closed
    agent_template_send(room_id=room.pk, agent=room.agent, template_id=template.pk)
    Message.objects.filter(type="template").update(
        created_at=timezone.now() - dt.timedelta(minutes=30)
    )
    Room.objects.filter(pk=room.pk).update(
        last_activity_at=timezone.now() - dt.timedelta(minutes=30)
    )
    assert rooms_close_inactive() == 0
    # A day later with no answer: closed as any silent conversation.
    assert rooms_close_inactive(now=timezone.now() + dt.timedelta(hours=25)) == 1
