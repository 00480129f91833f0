"""The bot's statements (rooms/bot/statements.py) against the ORM paths they replace: the turn
lock with the unanswered messages, and the reply with everything it changes."""

import pytest
from django.db import DataError, connection
from django.test import override_settings
from django_tasks_db.models import DBTaskResult

from chatbridge.locks import ROOM_TURN, advisory_key, lock_for_session
from chatbridge.settings import TASK_BACKENDS
from chatbridge.worker.runner import task_run, tasks_claim_many
from rooms.bot import turns
from rooms.conversation.services import room_queue
from rooms.models import Message, Room
from tests.payloads import text_from
from watson.models import WatsonSession

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573007070808"


@pytest.fixture
def database_mode():
    with override_settings(
        TASKS_BACKEND="database", TASKS={"default": {"BACKEND": TASK_BACKENDS["database"]}}
    ):
        yield


def _warm_room(post_webhook) -> Room:
    """A customer whose customer entry and bot room are in the cache."""
    assert post_webhook(text_from(WA, "hola")).status_code == 200
    return Room.objects.get()


def _claim() -> DBTaskResult | None:
    claimed = tasks_claim_many(["default"], ["test"])
    return claimed[0] if claimed else None


def test_a_worker_answers_the_task_it_wrote(database_mode, post_webhook, whatsapp):
    _warm_room(post_webhook)
    while (task := _claim()) is not None:  # the first message's turn
        task_run(task)
    post_webhook(text_from(WA, "¿sigues ahí?"))

    task = _claim()
    task_run(task)

    assert whatsapp.sent[-1]["text"] == "Dijiste: ¿sigues ahí?"
    assert Message.objects.get(text="¿sigues ahí?").handled_at is not None
    assert DBTaskResult.objects.get(pk=task.pk).status == "SUCCESSFUL"


def test_a_room_taken_while_watson_thinks_gets_no_bot_reply(post_webhook, whatsapp, monkeypatch):
    room = _warm_room(post_webhook)
    sent = len(whatsapp.sent)
    answer = turns.watson_reply

    def agents_take_it_meanwhile(**kwargs):
        output = answer(**kwargs)
        assert room_queue(room_id=room.pk, note="un asesor la tomó")
        return output

    monkeypatch.setattr(turns, "watson_reply", agents_take_it_meanwhile)
    post_webhook(text_from(WA, "¿me ayudas?"))

    assert len(whatsapp.sent) == sent  # the bot's answer is not sent over the agents
    assert not Message.objects.filter(direction="out", text__startswith="Dijiste").exists()
    assert Message.objects.get(text="¿me ayudas?").handled_at is not None
    assert Room.objects.get().status == Room.Status.QUEUED


def test_a_reply_of_several_messages_is_stored_in_its_order(post_webhook, whatsapp):
    post_webhook(text_from(WA, "opciones"))  # a text, then the buttons

    text, buttons = Message.objects.filter(direction="out").order_by("id")
    assert text.text == "Estas son las opciones:"
    assert buttons.type == "interactive"
    assert [m["type"] for m in whatsapp.sent] == ["text", "interactive"]


def test_each_answered_message_moves_the_session_expiry(post_webhook):
    _warm_room(post_webhook)
    session = WatsonSession.objects.get()
    WatsonSession.objects.update(last_used_at=session.last_used_at.replace(year=2020))

    post_webhook(text_from(WA, "sigo aquí"))

    touched = WatsonSession.objects.get()
    assert touched.last_used_at > session.last_used_at
    assert touched.expires_at > session.expires_at


def test_a_failed_read_after_the_turn_lock_lets_the_lock_go():
    """A session lock outlives a failed statement after it: it must be released, or the room's
    turns would wait forever on whichever pooled connection kept it."""
    failing = ("SELECT 1 / %s", [0])
    with pytest.raises(DataError), lock_for_session(ROOM_TURN, 42, then=failing):
        pass
    assert _advisory_locks_held() == []

    with lock_for_session(ROOM_TURN, 42, then=("SELECT %s", [7])) as rows:
        assert rows == [(7,)]
        assert _advisory_locks_held() == [tuple(k % 2**32 for k in advisory_key(ROOM_TURN, 42))]
    assert _advisory_locks_held() == []


def _advisory_locks_held() -> list[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT classid::bigint, objid::bigint FROM pg_locks"
            " WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
        )
        return cursor.fetchall()
