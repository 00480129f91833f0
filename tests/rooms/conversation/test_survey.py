"""The post-close survey: four questions over WhatsApp after an agent's or an inactivity close,
typed or tapped answers, asked again once, never a trap (a message that is not an answer opens a
new room with the bot), exactly once and in order like the bot's turns."""

import datetime as dt

import pytest
from django.core import mail
from django.core.management import call_command
from django.db.models import F
from django.test import override_settings
from django.utils import timezone
from prometheus_client import REGISTRY

import rooms.bot.survey as survey_turns
from chatbridge.settings import TASK_BACKENDS
from rooms.bot.survey import answer_parse, survey_turn_run
from rooms.bot.tasks import survey_turn
from rooms.conversation.lifecycle import rooms_close_inactive, rooms_close_out_of_hours
from rooms.conversation.services import room_close
from rooms.conversation.survey import question_body, surveys_expire
from rooms.delivery.services import TurnTarget
from rooms.desk.assignment import room_take
from rooms.desk.services import agent_message_send
from rooms.errors import ActionError
from rooms.models import Alert, AlertRecipient, Message, Room, Survey
from tests.factories import AgentFactory
from tests.payloads import message, notification, text_from
from tests.rooms.conversation.test_lifecycle import age, handed_to_an_agent
from tests.rooms.whatsapp.test_openapi import validate_body

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573007770001"
THANKS = "¡Gracias por tus respuestas! Nos ayudan a atenderte mejor."


@pytest.fixture(autouse=True)
def survey_on(settings):
    settings.SURVEY_ENABLED = True
    settings.AUTO_ASSIGN = False


def tap(wa_id: str, reply_id: str, title: str, *, kind: str = "list_reply") -> dict:
    body = {"type": kind, kind: {"id": reply_id, "title": title}}
    return notification(messages=[message(wa_id, kind="interactive", body=body)])


def closed_by_the_agent(post_webhook, wa_id: str = WA, agent: str = "ana") -> Room:
    room = handed_to_an_agent(post_webhook, wa_id, agent_name=agent)
    post_webhook(text_from(wa_id, "ya quedó, gracias"))
    assert room_close(room_id=room.pk, by=room.agent, agent_only=True, survey=True)
    return room


def last_text(whatsapp, wa_id: str = WA) -> str:
    return whatsapp.sent_to(wa_id)[-1]["text"]


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_the_happy_path_tapped_and_typed(post_webhook, whatsapp):
    counted = {
        "started": metric("chatbridge_surveys_total", event="started"),
        "completed": metric("chatbridge_surveys_total", event="completed"),
        "nps": metric("chatbridge_survey_nps_score_sum"),
        "comment": metric("chatbridge_survey_answers_total", question="comment"),
    }
    room = closed_by_the_agent(post_webhook)

    first = whatsapp.sent_to(WA)[-1]
    assert first["type"] == "interactive"
    assert first["body"]["interactive"]["type"] == "list"
    # The closing text and the first question in one message: they cannot arrive swapped.
    assert first["text"].startswith("Gracias por escribirnos. Cerramos esta conversación")
    assert "recomiendes este canal" in first["text"]
    rows = first["body"]["interactive"]["action"]["sections"][0]["rows"]
    assert [row["title"] for row in rows] == [str(n) for n in range(10, 0, -1)]
    assert Room.objects.get(pk=room.pk).status == "closed"

    post_webhook(tap(WA, "survey:nps:9", "9"))
    buttons = whatsapp.sent_to(WA)[-1]["body"]["interactive"]
    assert buttons["type"] == "button"
    assert [b["reply"]["title"] for b in buttons["action"]["buttons"]] == ["Sí", "No"]
    post_webhook(text_from(WA, "¡Sí!"))
    assert "satisfecho" in last_text(whatsapp)
    post_webhook(text_from(WA, "4"))
    assert "comentario" in last_text(whatsapp).lower() or "contarnos" in last_text(whatsapp)
    post_webhook(text_from(WA, "Ana fue muy amable"))
    assert last_text(whatsapp) == THANKS

    survey = Survey.objects.get(room=room)
    assert (survey.status, survey.nps, survey.resolved, survey.satisfaction, survey.comment) == (
        "completed",
        9,
        True,
        4,
        "Ana fue muy amable",
    )
    assert survey.ended_at is not None
    # On /metrics as each moment committed.
    assert {
        "started": metric("chatbridge_surveys_total", event="started") - counted["started"],
        "completed": metric("chatbridge_surveys_total", event="completed") - counted["completed"],
        "nps": metric("chatbridge_survey_nps_score_sum") - counted["nps"],
        "comment": metric("chatbridge_survey_answers_total", question="comment")
        - counted["comment"],
    } == {"started": 1, "completed": 1, "nps": 9, "comment": 1}
    # Everything happened in the closed room: no new conversation, no Watson.
    assert Room.objects.filter(customer=room.customer).count() == 1
    answers = Message.objects.filter(room=room, direction="in", created_at__gt=survey.started_at)
    assert answers.count() == 4 and not answers.filter(handled_at=None).exists()


def test_skipping_the_comment_and_a_typed_no(post_webhook, whatsapp):
    room = closed_by_the_agent(post_webhook)
    post_webhook(text_from(WA, "0"))  # not in the list (10 rows at most): typed
    post_webhook(tap(WA, "survey:resolved:no", "No", kind="button_reply"))
    post_webhook(tap(WA, "survey:satisfaction:2", "2 Insatisfecho"))
    post_webhook(tap(WA, "survey:comment:skip", "Omitir", kind="button_reply"))

    survey = Survey.objects.get(room=room)
    assert (survey.status, survey.nps, survey.resolved, survey.satisfaction, survey.comment) == (
        "completed",
        0,
        False,
        2,
        "",
    )
    assert last_text(whatsapp) == THANKS


def test_an_invalid_answer_is_asked_again_once_with_why(post_webhook, whatsapp):
    room = closed_by_the_agent(post_webhook)
    post_webhook(text_from(WA, "15"))
    again = last_text(whatsapp)
    assert again.startswith("Responde con un número del 0 al 10.")
    assert "recomiendes" in again
    assert Survey.objects.get(room=room).reasked

    post_webhook(text_from(WA, "8"))
    post_webhook(text_from(WA, "quizás"))
    assert last_text(whatsapp).startswith("Responde solo sí o no.")
    survey = Survey.objects.get(room=room)
    assert (survey.step, survey.nps, survey.reasked) == ("resolved", 8, True)

    # A second invalid answer to the same question is not an answer: the survey ends with what
    # it has, and the message is the bot's, in a new room.
    post_webhook(text_from(WA, "tal vez"))
    survey.refresh_from_db()
    assert (survey.status, survey.nps, survey.resolved) == ("ended", 8, None)
    new = Room.objects.exclude(pk=room.pk).get(customer=room.customer)
    assert new.status == "bot"
    assert list(new.messages.filter(direction="in").values_list("text", flat=True)) == ["tal vez"]
    assert last_text(whatsapp) == "Dijiste: tal vez"


def test_a_comment_too_long_is_asked_again(post_webhook, whatsapp):
    room = closed_by_the_agent(post_webhook)
    for answer in ("10", "si", "5"):
        post_webhook(text_from(WA, answer))
    post_webhook(text_from(WA, "x" * 251))
    assert last_text(whatsapp).startswith("Tu comentario es muy largo: máximo 250 caracteres.")
    post_webhook(text_from(WA, "y" * 250))
    assert Survey.objects.get(room=room).comment == "y" * 250


def test_a_new_message_mid_survey_opens_a_room_with_the_bot(post_webhook, whatsapp, watson):
    room = closed_by_the_agent(post_webhook)
    post_webhook(text_from(WA, "9"))
    asked = len(watson.requests)

    post_webhook(text_from(WA, "Hola, necesito ayuda con el bloqueo de mi tarjeta"))

    survey = Survey.objects.get(room=room)
    assert (survey.status, survey.nps) == ("ended", 9)  # the answer given is kept
    new = Room.objects.exclude(pk=room.pk).get(customer=room.customer)
    assert new.status == "bot"
    assert [r["path"].rsplit("/", 1)[-1] for r in watson.requests[asked:]][-1] == "message"
    assert last_text(whatsapp) == "Dijiste: Hola, necesito ayuda con el bloqueo de mi tarjeta"
    # The next message is the new room's, not the survey's.
    post_webhook(text_from(WA, "gracias"))
    assert new.messages.filter(text="gracias").exists()
    assert Survey.objects.get(room=room).status == "ended"


def test_a_file_mid_survey_is_not_an_answer(post_webhook, whatsapp):
    room = closed_by_the_agent(post_webhook)
    location = {"latitude": 4.6, "longitude": -74.08, "name": "Oficina"}
    post_webhook(notification(messages=[message(WA, kind="location", body=location)]))
    assert Survey.objects.get(room=room).status == "ended"
    assert Room.objects.exclude(pk=room.pk).get(customer=room.customer).messages.count() >= 1


def test_unanswered_the_survey_times_out_keeping_its_answers(post_webhook, whatsapp, settings):
    settings.SURVEY_TIMEOUT_MINUTES = 30
    room = closed_by_the_agent(post_webhook)
    post_webhook(text_from(WA, "7"))
    survey = Survey.objects.get(room=room)
    assert surveys_expire() == 0  # just asked
    sent = len(whatsapp.sent)

    Survey.objects.filter(pk=survey.pk).update(asked_at=F("asked_at") - dt.timedelta(minutes=31))
    expired = metric("chatbridge_surveys_total", event="expired")
    assert surveys_expire() == 1
    assert metric("chatbridge_surveys_total", event="expired") == expired + 1
    assert surveys_expire() == 0

    survey.refresh_from_db()
    assert (survey.status, survey.nps, survey.step) == ("expired", 7, "resolved")
    assert len(whatsapp.sent) == sent  # nothing said: the customer moved on
    post_webhook(text_from(WA, "si"))  # too late for the survey: a new conversation
    assert Room.objects.exclude(pk=room.pk).get(customer=room.customer).status == "bot"
    assert Survey.objects.get(pk=survey.pk).resolved is None


def test_an_answer_stored_as_the_survey_times_out_goes_to_the_bot(post_webhook, whatsapp):
    """The race: the answer is stored while the survey asks, the timeout ends it before the
    answer's turn runs. The message is not lost: it opens a new room with the bot."""
    room = closed_by_the_agent(post_webhook)
    survey = Survey.objects.get(room=room)
    stored = Message.objects.create(
        room=room, direction="in", author="customer", text="8", wa_message_id="wamid.race"
    )
    Survey.objects.filter(pk=survey.pk).update(status="expired", ended_at=timezone.now())
    target = {"provider": "whatsapp", "uid": WA, "wa_id": WA, "user_id": "", "watson_user_id": "x"}

    survey_turn.enqueue(room_id=room.pk, message_id=stored.pk, target=target)

    stored.refresh_from_db()
    assert stored.room.status == "bot" and stored.handled_at is not None
    assert last_text(whatsapp) == "Dijiste: 8"


def test_no_survey_outside_the_window(post_webhook, whatsapp):
    room = handed_to_an_agent(post_webhook, WA)
    Room.objects.filter(pk=room.pk).update(
        last_customer_at=timezone.now() - dt.timedelta(hours=23, minutes=55)
    )
    room_close(room_id=room.pk, by=room.agent, agent_only=True, survey=True)
    assert not Survey.objects.exists()
    assert last_text(whatsapp).startswith("Gracias por escribirnos.")
    assert whatsapp.sent_to(WA)[-1]["type"] == "text"


def test_which_closes_ask(post_webhook, whatsapp, settings):
    # An agent's room closed for inactivity: asked.
    inactive = handed_to_an_agent(post_webhook, "573007770011", agent_name="dora")
    agent_message_send(room_id=inactive.pk, agent=inactive.agent, text="¿Algo más?")
    age(inactive, customer_minutes=20, activity_minutes=19)
    # The bot's room closed for inactivity: not asked (SURVEY_BOT_ROOMS off).
    post_webhook(text_from("573007770012", "hola"))
    bots = Room.objects.get(customer__uid="573007770012")
    age(bots, customer_minutes=9, activity_minutes=8)
    assert rooms_close_inactive() == 2
    assert list(Survey.objects.values_list("room_id", flat=True)) == [inactive.pk]
    assert whatsapp.sent_to("573007770012")[-1]["type"] == "text"

    # Closed by schedule: never asked.
    queued = handed_to_an_agent(post_webhook, "573007770013", agent_name="eva")
    Room.objects.filter(pk=queued.pk).update(status="queued")  # released, still waiting
    settings.BUSINESS_HOURS = "00:00-00:01"
    settings.OUT_OF_HOURS = "close"
    assert rooms_close_out_of_hours() == 1
    assert Room.objects.get(pk=queued.pk).status == "closed"
    assert Survey.objects.count() == 1

    # The admin's close is an operator's clean-up: not asked either.
    settings.BUSINESS_HOURS = ""
    other = handed_to_an_agent(post_webhook, "573007770015", agent_name="beto")
    room_close(room_id=other.pk, by=other.agent, reason="closed from the admin")
    assert Survey.objects.count() == 1

    settings.SURVEY_ENABLED = False
    last = handed_to_an_agent(post_webhook, "573007770016", agent_name="carla")
    room_close(room_id=last.pk, by=last.agent, agent_only=True, survey=True)
    assert Survey.objects.count() == 1


def test_a_low_score_alerts_supervisors_once(post_webhook, whatsapp, settings):
    settings.SURVEY_LOW_NPS = 2
    AlertRecipient.objects.create(email="supervision@banco.example")
    room = closed_by_the_agent(post_webhook)
    post_webhook(text_from(WA, "1"))

    alert = Alert.objects.get()
    assert (alert.room_id, alert.cause, alert.data["nps"]) == (room.pk, "low_score", 1)
    assert alert.data["agent"] == room.agent_id
    assert mail.outbox[-1].subject == "chatbridge: a customer rated 1 of 10 in the survey"

    # Another customer at 2 (not below it): no alert.
    closed_by_the_agent(post_webhook, "573007770021", agent="beto")
    post_webhook(text_from("573007770021", "2"))
    assert Alert.objects.count() == 1


def test_a_redelivered_answer_is_read_once(post_webhook, whatsapp):
    room = closed_by_the_agent(post_webhook)
    payload = text_from(WA, "9", wamid="wamid.survey-once")
    post_webhook(payload)
    sent = len(whatsapp.sent)
    assert post_webhook(payload).json()["duplicates"] == 1
    assert len(whatsapp.sent) == sent
    survey = Survey.objects.get(room=room)
    assert (survey.step, survey.nps) == ("resolved", 9)


def test_a_burst_of_answers_is_read_in_order(post_webhook, whatsapp):
    """Three answers stored before any turn ran (database mode: tasks wait for a worker): one
    turn reads them oldest first, each with its own question; the later tasks find nothing."""
    room = closed_by_the_agent(post_webhook)
    database = {"default": {"BACKEND": TASK_BACKENDS["database"]}}
    with override_settings(TASKS_BACKEND="database", TASKS=database):
        for answer in ("6", "no", "3"):
            post_webhook(text_from(WA, answer))
    assert not Message.objects.filter(room=room, text="6", handled_at__isnull=False).exists()
    last = Message.objects.filter(room=room, direction="in").latest("id")
    target = {"provider": "whatsapp", "uid": WA, "wa_id": WA, "user_id": "", "watson_user_id": "x"}
    assert survey_turn_run(room_id=room.pk, message_id=last.pk, target=TurnTarget(**target)) is None

    survey = Survey.objects.get(room=room)
    assert (survey.nps, survey.resolved, survey.satisfaction, survey.step) == (
        6,
        False,
        3,
        "comment",
    )
    texts = [m["text"] for m in whatsapp.sent_to(WA)[-3:]]
    assert "Resolvimos" in texts[0] and "satisfecho" in texts[1] and "contarnos" in texts[2]


def test_a_survey_turn_that_died_is_resumed_once(post_webhook, whatsapp, monkeypatch):
    room = closed_by_the_agent(post_webhook)
    parse = survey_turns.answer_parse

    def dies(*args, **kwargs):
        raise RuntimeError("the worker died")

    monkeypatch.setattr(survey_turns, "answer_parse", dies)
    post_webhook(text_from(WA, "9"))  # the webhook's 200: the message is kept
    answer = Message.objects.get(room=room, text="9")
    assert answer.handled_at is None

    monkeypatch.setattr(survey_turns, "answer_parse", parse)
    call_command("turns_resume", older_than=0)
    call_command("turns_resume", older_than=0)

    assert Survey.objects.get(room=room).nps == 9
    assert sum("Resolvimos" in m["text"] for m in whatsapp.sent_to(WA)) == 1


def test_one_survey_at_a_time_per_customer(post_webhook, whatsapp):
    first = closed_by_the_agent(post_webhook)
    # A new conversation while the first survey asks would end it (its message is not an
    # answer); a second close meanwhile, were it to happen, asks nothing more.
    room = Room.objects.create(customer=first.customer, status="assigned", agent=first.agent)
    Room.objects.filter(pk=room.pk).update(last_customer_at=timezone.now())
    room_close(room_id=room.pk, by=first.agent, agent_only=True, survey=True)
    assert Survey.objects.count() == 1


@pytest.mark.parametrize(
    ("step", "text", "expected"),
    [
        ("nps", "10", (10, True, False)),
        ("nps", " 7/10 ", (7, True, False)),
        ("nps", "11", (None, False, True)),
        ("nps", "muy bueno", (None, False, True)),
        ("nps", "quiero hablar con alguien de mi cuenta", (None, False, False)),
        ("resolved", "Si", (True, True, False)),
        ("resolved", "sí.", (True, True, False)),
        ("resolved", "NO", (False, True, False)),
        ("satisfaction", "5", (5, True, False)),
        ("satisfaction", "0", (None, False, True)),
        ("comment", "omitir", ("", True, False)),
        ("comment", "Todo bien", ("Todo bien", True, False)),
    ],
)
def test_typed_answers(step, text, expected):
    answer = answer_parse(step, kind="text", text=text)
    assert (answer.value, answer.valid, answer.attempt) == expected


@pytest.mark.parametrize("step", ["nps", "resolved", "satisfaction", "comment"])
def test_each_question_validates_against_metas_schema(step):
    validate_body(question_body(step, before="Gracias por escribirnos."))


def test_an_agent_takes_nothing_from_a_survey(post_webhook):
    """The survey's room stays closed: agents can neither take it nor see it in the queue."""
    room = closed_by_the_agent(post_webhook)
    post_webhook(text_from(WA, "9"))
    with pytest.raises(ActionError):
        room_take(room_id=room.pk, agent=AgentFactory(username="otra"))
    assert Room.objects.get(pk=room.pk).status == "closed"


def test_the_agent_sees_the_result_once_complete(post_webhook, client):
    room = closed_by_the_agent(post_webhook)
    client.force_login(room.agent)

    def shown() -> dict | None:
        response = client.get(f"/agent/conversations/{room.pk}")
        assert response.status_code == 200
        return response.json()["survey"]

    post_webhook(text_from(WA, "9"))
    assert shown() is None  # half answered: not shown
    for answer in ("si", "5", "Muy rápido"):
        post_webhook(text_from(WA, answer))
    assert shown() == {"nps": 9, "resolved": True, "satisfaction": 5, "comment": "Muy rápido"}
