"""Templates and the 24-hour window: once the customer's window has closed (or WhatsApp said so
with 131047) an agent can send only an approved template, which chatbridge fills and WhatsApp
carries; the window opens again when the customer answers. Meta's template status updates are
kept, and a template Meta paused is not offered."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone, translation

from rooms.desk.services import agent_file_send, agent_message_send, agent_template_send
from rooms.errors import ActionError
from rooms.events import room_detail, templates_data
from rooms.models import Message, MessageTemplate, Room
from tests.factories import AgentFactory, CustomerFactory
from tests.payloads import text_from

pytestmark = pytest.mark.django_db(transaction=True)

WA = "573007770001"


@pytest.fixture
def template(whatsapp):
    whatsapp.templates = {("seguimiento_caso", "es")}
    return MessageTemplate.objects.create(
        name="seguimiento_caso",
        language="es",
        header="Banco de Prueba",
        body="Hola {{1}}, soy {{2}}. Seguimos con tu caso: respóndenos para continuar.",
        parameters=["customer_first_name", "agent_first_name"],
    )


@pytest.fixture
def stale_room(db):
    """An agent's room whose customer last wrote 25 hours ago."""
    agent = AgentFactory(first_name="Marta")
    room = Room.objects.create(
        customer=CustomerFactory(uid=WA, name="Ana María Pérez"),
        status=Room.Status.ASSIGNED,
        agent=agent,
        assigned_at=timezone.now(),
        last_customer_at=timezone.now() - dt.timedelta(hours=25),
    )
    return agent, room


def test_after_the_window_a_free_form_message_is_refused_with_a_reason(stale_room, whatsapp):
    agent, room = stale_room
    with pytest.raises(ActionError) as refused:
        agent_message_send(room_id=room.pk, agent=agent, text="¿sigue ahí?")
    assert (refused.value.code, refused.value.message) == (
        "window_closed",
        "Pasaron más de 24 horas desde el último mensaje del cliente: ahora WhatsApp solo lleva "
        "una plantilla aprobada.",
    )
    with translation.override("en"):
        assert refused.value.message == (
            "More than 24 hours have passed since the customer last wrote: WhatsApp only carries "
            "an approved template now."
        )
    assert not Message.objects.exists()
    assert whatsapp.sent == []


def test_after_the_window_a_file_is_refused_too(stale_room):
    from django.core.files.uploadedfile import SimpleUploadedFile

    agent, room = stale_room
    upload = SimpleUploadedFile("a.pdf", b"%PDF-1.4", content_type="application/pdf")
    with pytest.raises(ActionError, match="Pasaron más de 24 horas") as refused:
        agent_file_send(room_id=room.pk, agent=agent, upload=upload)
    assert refused.value.code == "window_closed"


def test_a_template_is_filled_and_sent_and_the_agent_sees_what_the_customer_reads(
    stale_room, template, whatsapp
):
    agent, room = stale_room
    message = agent_template_send(room_id=room.pk, agent=agent, template_id=template.pk)

    (sent,) = whatsapp.wait_for_sent(1)
    assert sent["body"]["template"] == {
        "name": "seguimiento_caso",
        "language": {"policy": "deterministic", "code": "es"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "Marta"}],
            }
        ],
    }
    message.refresh_from_db()
    assert (message.type, message.status) == ("template", "sent")
    assert message.text == (
        "Banco de Prueba\nHola Ana, soy Marta. Seguimos con tu caso: respóndenos para continuar."
    )
    # The console renders its preview from the same fills the server used.
    fills = room_detail(Room.objects.select_related("customer", "agent").get(pk=room.pk))[
        "template_fills"
    ]
    assert template.text(fills) == message.text


def test_a_template_meta_does_not_have_fails_with_132001(stale_room, template, whatsapp):
    agent, room = stale_room
    whatsapp.templates = set()  # deleted in WhatsApp Manager, still listed here
    message = agent_template_send(room_id=room.pk, agent=agent, template_id=template.pk)
    message.refresh_from_db()
    assert (message.status, message.error_code) == ("failed", 132001)
    assert room.events.filter(kind="message.status").latest("seq").data["error_code"] == 132001


def test_the_window_opens_again_when_the_customer_answers(stale_room, post_webhook, whatsapp):
    agent, room = stale_room
    post_webhook(text_from(WA, "sí, aquí estoy"))
    message = agent_message_send(room_id=room.pk, agent=agent, text="Perfecto, sigamos.")
    assert message.status in ("pending", "sent")
    assert whatsapp.wait_for_sent(1)[0]["text"] == "Perfecto, sigamos."


def test_templates_meta_pauses_are_not_offered_until_approved_again(template, post_webhook):
    assert [t["name"] for t in templates_data()] == ["seguimiento_caso"]
    assert post_webhook(_template_update("PAUSED", "Low quality")).status_code == 200
    template.refresh_from_db()
    assert (template.status, template.status_reason) == ("PAUSED", "Low quality")
    assert template.status_updated_at is not None
    assert templates_data() == []
    post_webhook(_template_update("APPROVED", "NONE"))
    template.refresh_from_db()
    assert (template.status, template.status_reason) == ("APPROVED", "")
    assert len(templates_data()) == 1


@pytest.mark.parametrize(
    ("event", "offered"),
    [("REINSTATED", True), ("FLAGGED", True), ("REJECTED", False), ("DISABLED", False)],
)
def test_each_of_metas_events_offers_the_template_or_not(template, post_webhook, event, offered):
    """REINSTATED and FLAGGED templates can still be sent; they vanished from the console."""
    post_webhook(_template_update(event, "NONE"))
    assert bool(templates_data()) is offered


def test_a_paused_template_cannot_be_sent(stale_room, template):
    agent, room = stale_room
    MessageTemplate.objects.update(status="PAUSED")
    with pytest.raises(ActionError) as refused:
        agent_template_send(room_id=room.pk, agent=agent, template_id=template.pk)
    assert (refused.value.code, refused.value.message) == (
        "invalid",
        "Esta plantilla no existe o no está aprobada.",
    )


@pytest.mark.parametrize(
    ("body", "parameters", "field"),
    [
        ("Hola {{1}} y {{3}}", ["customer_first_name", "agent_first_name"], "body"),
        ("Hola {{1}}", [], "parameters"),
        ("Hola {{1}}", ["the_customers_shoe_size"], "parameters"),
    ],
)
def test_operators_get_a_clear_error_for_a_template_that_cannot_be_filled(body, parameters, field):
    template = MessageTemplate(name="x", language="es", body=body, parameters=parameters)
    with pytest.raises(ValidationError) as invalid:
        template.full_clean()
    assert field in invalid.value.message_dict


def _template_update(event: str, reason: str) -> dict:
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "time": 1751247548,
                "changes": [
                    {
                        "field": "message_template_status_update",
                        "value": {
                            "event": event,
                            "message_template_id": 1689556908129832,
                            "message_template_name": "seguimiento_caso",
                            "message_template_language": "es",
                            "reason": reason,
                        },
                    }
                ],
            }
        ],
    }


def test_internal_notes_stay_in_the_room_and_only_its_agent_writes_them(stale_room, whatsapp):
    from rooms.desk.services import agent_note_add

    agent, room = stale_room
    note = agent_note_add(room_id=room.pk, agent=agent, text="  Ya llamó ayer por lo mismo.  ")
    assert note.text == "Ya llamó ayer por lo mismo."
    assert room.events.get(kind="note.new").data["text"] == "Ya llamó ayer por lo mismo."
    assert whatsapp.sent == []  # never sent, even outside the window
    with pytest.raises(ActionError) as refused:
        agent_note_add(room_id=room.pk, agent=agent, text="   ")
    assert (refused.value.code, refused.value.message) == (
        "invalid",
        "La nota está vacía: escribe algo para guardar.",
    )
    with pytest.raises(ActionError) as refused:
        agent_note_add(room_id=room.pk, agent=AgentFactory(username="otra"), text="hola")
    assert refused.value.code == "not_your_room"
    detail = room_detail(Room.objects.select_related("customer", "agent").get(pk=room.pk))
    assert [n["text"] for n in detail["notes"]] == ["Ya llamó ayer por lo mismo."]
