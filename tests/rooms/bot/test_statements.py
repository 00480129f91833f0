"""The bot's statements (rooms/bot/statements.py) against the ORM paths they replace: the turn
lock with the unanswered messages, and the reply with everything it changes."""

import datetime as dt

import pytest
from django.conf import settings as django_settings
from django.db import DataError, connection
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from chatbridge.locks import ROOM_TURN, advisory_key, lock_for_session
from chatbridge.worker.runner import task_run, tasks_claim_many
from rooms.bot import turns
from rooms.bot.replies import Draft, text_draft
from rooms.bot.statements import reply_store, session_touch, unanswered_read, unanswered_read_orm
from rooms.bot.turns import reply_store_orm
from rooms.conversation.services import room_queue
from rooms.models import Message, Room
from tests.factories import CustomerFactory
from tests.payloads import text_from
from watson.models import WatsonSession
from watson.services import watson_session_touch

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573007070808"


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


# --- each statement against the ORM path it replaces --------------------------------------------


def _bot_room_with_unanswered(uid: str, texts: list[str]) -> tuple[Room, list[Message]]:
    customer = CustomerFactory(uid=uid)
    room = Room.objects.create(customer=customer)
    messages = [
        Message.objects.create(
            room=room, direction=Message.Direction.INBOUND, author="customer", text=text
        )
        for text in texts
    ]
    return room, messages


def _reply_rows(room: Room) -> list[tuple]:
    return list(
        Message.objects.filter(room=room, direction=Message.Direction.OUTBOUND)
        .order_by("id")
        .values_list("direction", "author", "type", "text", "payload", "status", "agent_id")
    )


def test_the_unanswered_read_is_the_orm_read():
    room, messages = _bot_room_with_unanswered("573007000001", ["uno", "dos", "tres"])
    Message.objects.filter(pk=messages[0].pk).update(handled_at=timezone.now())
    sql, params = unanswered_read(room_id=room.pk, up_to=messages[1].pk)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()

    assert rows == unanswered_read_orm(room_id=room.pk, up_to=messages[1].pk)
    assert [row[2] for row in rows] == ["dos"]


def test_the_one_round_trip_reply_stores_what_the_orm_path_stores():
    drafts = [text_draft("Hola"), text_draft("¿Algo más?")]
    now = timezone.now()
    stored = {}
    for name, store in (("statements", reply_store), ("orm", reply_store_orm)):
        room, [inbound] = _bot_room_with_unanswered(f"57300700001{len(stored)}", ["hola"])
        outbound = [_draft_row(room, draft) for draft in drafts]
        kwargs = {"touch_session": False} if store is reply_store else {}
        saved = store(room_id=room.pk, inbound_id=inbound.pk, outbound=outbound, now=now, **kwargs)
        assert [message.pk for message in saved] == [
            m.pk for m in Message.objects.filter(room=room, direction="out").order_by("id")
        ]
        room.refresh_from_db()
        inbound.refresh_from_db()
        stored[name] = (_reply_rows(room), room.last_activity_at, inbound.handled_at)

    assert stored["statements"] == stored["orm"]
    assert [row[3] for row in stored["orm"][0]] == ["Hola", "¿Algo más?"]


def test_neither_path_stores_a_reply_in_a_room_that_left_the_bot():
    for store in (reply_store, reply_store_orm):
        room, [inbound] = _bot_room_with_unanswered(f"57300700002{store is reply_store:d}", ["x"])
        Room.objects.filter(pk=room.pk).update(status=Room.Status.QUEUED)
        kwargs = {"touch_session": False} if store is reply_store else {}
        outbound = [_draft_row(room, text_draft("tarde"))]
        now = timezone.now()

        assert (
            store(room_id=room.pk, inbound_id=inbound.pk, outbound=outbound, now=now, **kwargs)
            is None
        )
        assert _reply_rows(room) == []
        inbound.refresh_from_db()
        assert inbound.handled_at == now  # the message is the agents' now: answered for the bot


def test_the_session_touch_statement_is_watson_session_touch():
    moved = {}
    for name in ("statements", "orm"):
        room, _ = _bot_room_with_unanswered(f"57300700003{len(moved)}", [])
        old = timezone.now() - dt.timedelta(days=1)
        WatsonSession.objects.create(room=room, session_id=name, last_used_at=old, expires_at=old)
        now = timezone.now()
        if name == "statements":
            with connection.cursor() as cursor:
                cursor.execute(*session_touch(room_id=room.pk, now=now))
        else:
            watson_session_touch(room_id=room.pk)
        session = WatsonSession.objects.get(room=room)
        moved[name] = session.expires_at - session.last_used_at
        assert abs((session.last_used_at - now).total_seconds()) < 5

    assert (
        moved["statements"]
        == moved["orm"]
        == dt.timedelta(seconds=django_settings.WATSON_SESSION_TIMEOUT)
    )


def _draft_row(room: Room, draft: Draft) -> Message:
    return Message(
        room_id=room.pk,
        direction=Message.Direction.OUTBOUND,
        author=Message.Author.BOT,
        type=draft.type,
        text=draft.text,
        payload=draft.body,
        status=Message.Status.PENDING,
    )
