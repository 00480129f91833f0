"""Accepted input is never lost: a process killed mid-turn leaves work `turns_resume` finishes."""

import datetime as dt
import io
import threading

import pytest
from django.core.management import call_command
from django.utils import timezone

from rooms.models import Message, Room
from tests.factories import OutboundFactory
from tests.payloads import text_from
from tests.servers import AppProcess, post_signed, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573006660001"


def _resume() -> str:
    out = io.StringIO()
    call_command("turns_resume", older_than=0, stdout=out)
    return out.getvalue()


def test_daphne_killed_mid_turn_then_resumed_answers_once(
    fake_vendors, whatsapp, watson, record_fault
):
    server = AppProcess.daphne(TASKS_BACKEND="immediate").start()
    watson.delay = 5  # the turn is inside Watson when the process dies
    payload = text_from(WA, "hola", wamid="wamid.killed")
    outcome: dict = {}

    def post() -> None:
        try:
            outcome["response"] = post_signed(server.url, payload)
        except Exception as error:
            outcome["error"] = error

    poster = threading.Thread(target=post)
    poster.start()
    wait_until(lambda: Message.objects.filter(wa_message_id="wamid.killed").exists(), what="stored")
    wait_until(lambda: watson.requests, what="the turn reaching Watson")
    server.kill()
    poster.join(timeout=10)
    watson.delay = 0
    assert "error" in outcome  # no 200: WhatsApp would deliver it again
    assert whatsapp.sent == []

    assert "resumed 1 turn(s)" in _resume()
    assert [m["text"] for m in whatsapp.sent_to(WA)] == [
        "¡Hola! Soy el asistente virtual de chatbridge.\n\n¿En qué te puedo ayudar?"
    ]

    # WhatsApp's redelivery is recognised, and the sweep finds nothing more to do.
    second = AppProcess.daphne(TASKS_BACKEND="immediate").start()
    try:
        assert post_signed(second.url, payload).json()["duplicates"] == 1
    finally:
        second.stop()
    assert "resumed 0 turn(s)" in _resume()
    assert len(whatsapp.sent) == 1
    record_fault(
        "Daphne SIGKILLed mid-turn (immediate mode)",
        done="kill while the turn waited on Watson; turns_resume; WhatsApp's redelivery",
        held="answered exactly once; the redelivery recognised as a duplicate",
    )


def test_worker_killed_mid_turn_then_resumed_answers_once(
    fake_vendors, whatsapp, watson, record_fault
):
    server = AppProcess.daphne(TASKS_BACKEND="database").start()
    worker = AppProcess.worker().start()
    try:
        watson.delay = 5
        response = post_signed(server.url, text_from(WA, "hola"))
        assert response.status_code == 200  # acknowledged: it must be answered
        wait_until(lambda: watson.requests, what="the worker reaching Watson")
        worker.kill()
        watson.delay = 0
        assert whatsapp.sent == []

        with _settings_tasks_backend("database"):
            assert "resumed 1 turn(s)" in _resume()
        replacement = AppProcess.worker().start()
        try:
            whatsapp.wait_for_sent(1, timeout=20, to=WA)
            wait_until(
                lambda: not Message.objects.filter(direction="in", handled_at=None).exists(),
                what="the message handled",
            )
        finally:
            replacement.stop()
    finally:
        server.stop()
        worker.stop()
    assert len(whatsapp.sent) == 1
    record_fault(
        "Task worker SIGKILLed mid-turn (database mode)",
        done="kill while the turn waited on Watson; turns_resume; a new worker",
        held="the acknowledged message answered exactly once",
    )


def test_reply_stored_but_never_sent_is_sent_by_the_sweep(post_webhook, whatsapp):
    post_webhook(text_from(WA, "hola"))
    room = Room.objects.get()
    stranded = OutboundFactory(room=room, text="respuesta pendiente")
    Message.objects.filter(pk=stranded.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5)
    )

    assert "resent 1 reply(ies)" in _resume()

    stranded.refresh_from_db()
    assert stranded.status == Message.Status.SENT
    assert whatsapp.sent[-1]["text"] == "respuesta pendiente"
    assert "resent 0" in _resume()


def test_a_message_whose_turns_keep_dying_goes_to_the_agents(post_webhook, settings):
    """Each resumed turn killed its worker (or died otherwise): after TURN_RESUME_MAX resumes a
    person answers it, instead of the bot being tried for ever."""
    post_webhook(text_from(WA, "hola"))
    message = Message.objects.get(direction="in")
    Message.objects.filter(pk=message.pk).update(handled_at=None, resumes=1)
    assert "resumed 1 turn(s)" in _resume()  # the second resume: still the bot's
    Message.objects.filter(pk=message.pk).update(handled_at=None)
    Message.objects.filter(pk=message.pk).update(resumes=settings.TURN_RESUME_MAX)
    assert "resumed 0 turn(s)" in _resume()
    message.refresh_from_db()
    assert message.handled_at is not None
    room = Room.objects.get()
    assert room.status == Room.Status.QUEUED
    assert room.handoff_note == "El asistente no pudo responder este mensaje."


def test_recent_unanswered_messages_are_left_to_their_turn(post_webhook):
    post_webhook(text_from(WA, "hola"))
    Message.objects.filter(direction="in").update(handled_at=None)  # as if a turn were running
    out = io.StringIO()
    call_command("turns_resume", older_than=60, stdout=out)
    assert "resumed 0 turn(s)" in out.getvalue()


class _settings_tasks_backend:
    """The sweep enqueues through the configured backend: here, a task row for the workers."""

    def __init__(self, backend: str) -> None:
        from django.test import override_settings

        from chatbridge.settings import TASK_BACKENDS

        self.override = override_settings(
            TASKS_BACKEND=backend, TASKS={"default": {"BACKEND": TASK_BACKENDS[backend]}}
        )

    def __enter__(self) -> None:
        self.override.enable()

    def __exit__(self, *exc: object) -> None:
        self.override.disable()
