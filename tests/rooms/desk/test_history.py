"""What an agent reads of the past: the customer panel's earlier conversations (one query),
a closed conversation read-only with its events, and the search over closed conversations by
number, name or words (PostgreSQL's Spanish full-text index, accents ignored); each only to
the agents it belongs to, and to staff who may view messages."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

from rooms.desk.history import (
    MATCH_END,
    MATCH_START,
    conversation_read,
    conversations_search,
    customer_rooms,
    may_read_conversation,
    messages_matching,
)
from rooms.errors import ActionError
from rooms.events import room_detail
from rooms.models import Message, Room, RoomNote
from tests.factories import AgentFactory, CustomerFactory, UserFactory
from tests.factories import closed_conversation as closed_room

pytestmark = pytest.mark.django_db


@pytest.fixture
def marta():
    return AgentFactory(username="marta", first_name="Marta", last_name="Gil")


@pytest.fixture
def pedro():
    return AgentFactory(username="pedro", first_name="Pedro")


def found(user, text):
    return [result["id"] for result in conversations_search(user=user, text=text)]


# --- search -------------------------------------------------------------------------------------


def test_words_are_found_in_spanish_with_or_without_their_accents(marta):
    ana = CustomerFactory(name="Ana Pérez")
    room = closed_room(ana, marta, "Quiero bloquear mi tarjeta de crédito, la perdí")
    closed_room(CustomerFactory(), marta, "¿Cuál es el horario de la oficina?")

    assert found(marta, "credito") == [room.pk]  # typed without the accent
    assert found(marta, "tarjetas") == [room.pk]  # another form of the word (Spanish stemming)
    assert found(marta, "bloquear tarjetas") == [room.pk]  # all the words, any order
    assert found(marta, "hipoteca") == []


def test_the_snippet_marks_the_words_that_matched(marta):
    closed_room(CustomerFactory(), marta, "Buenos días, necesito el certificado bancario del año")
    [result] = conversations_search(user=marta, text="certificado")
    assert f"{MATCH_START}certificado{MATCH_END}" in result["snippet"]
    assert result["closed_reason"] == "Resuelto"
    assert result["agent_name"] == "Marta Gil"


def test_a_customer_is_found_by_part_of_their_number_or_their_name(marta):
    room = closed_room(CustomerFactory(uid="573001112233", name="José Ramírez"), marta, "hola")
    closed_room(CustomerFactory(uid="573009998877", name="Lucía"), marta, "hola")

    assert found(marta, "1112233") == [room.pk]
    assert found(marta, "+57 300 111 2233") == [room.pk]
    assert found(marta, "ramírez") == [room.pk]
    assert found(marta, "JOSÉ") == [room.pk]


def test_with_numbers_masked_an_agent_finds_by_the_whole_number_or_the_last_four(marta, settings):
    """Masked numbers are not given away piece by piece: a part of a number finds nothing,
    the whole number or the four digits the agent sees do."""
    settings.AGENT_NUMBER_DISPLAY = "masked"
    room = closed_room(CustomerFactory(uid="573001112233"), marta, "hola")
    assert found(marta, "2233") == [room.pk]
    assert found(marta, "+57 300 111 2233") == [room.pk]
    assert found(marta, "57300111") == []
    assert found(marta, "0011122") == []
    [result] = conversations_search(user=marta, text="2233")
    assert result["customer"]["number"] == "…2233"


def test_an_agent_finds_their_own_conversations_and_staff_find_everyone(marta, pedro):
    customer = CustomerFactory()
    mine = closed_room(customer, marta, "consulta de saldo", days_ago=2)
    theirs = closed_room(customer, pedro, "consulta de saldo", days_ago=1)
    # Marta answered in Pedro's later one before transferring it: hers too.
    shared = closed_room(CustomerFactory(), pedro, "consulta de saldo", days_ago=0)
    Message.objects.create(
        room=shared,
        direction="out",
        author="agent",
        agent=marta,
        text="Le transfiero.",
        status="sent",
    )
    open_room = Room.objects.create(
        customer=CustomerFactory(), status=Room.Status.ASSIGNED, agent=marta
    )
    Message.objects.create(room=open_room, direction="in", author="customer", text="saldo")

    assert found(marta, "saldo") == [shared.pk, mine.pk]  # newest first, never an open room
    assert found(pedro, "saldo") == [shared.pk, theirs.pk]
    operator = UserFactory(is_staff=True)
    operator.user_permissions.add(Permission.objects.get(codename="view_message"))
    assert found(operator, "saldo") == [shared.pk, theirs.pk, mine.pk]


@pytest.mark.parametrize("text", ["", " ", "a", "x" * 201])
def test_a_search_too_short_or_too_long_is_refused_with_why(marta, text):
    with pytest.raises(ActionError) as refused:
        conversations_search(user=marta, text=text)
    assert refused.value.code == "invalid"
    assert "2" in refused.value.message and "200" in refused.value.message


def test_the_search_reads_the_full_text_index(marta):
    """The query's expression is the index's (migration 0012): with sequential scans off the
    plan must name the index, or the search would read every message."""
    qs = messages_matching("tarjeta").values("room_id")
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "message_text_search" in plan, plan


# --- the customer panel ---------------------------------------------------------------------------


def test_the_customer_panel_lists_the_earlier_conversations_in_one_query(
    marta, pedro, django_assert_num_queries
):
    customer = CustomerFactory(name="Ana", notes="Cliente preferente: ofrecer la línea directa.")
    first = closed_room(customer, pedro, "Mi primera consulta", days_ago=30)
    second = closed_room(customer, marta, "Otra consulta", "más detalles", days_ago=3)
    closed_room(CustomerFactory(), marta, "de otra persona")
    now = Room.objects.create(customer=customer, status=Room.Status.ASSIGNED, agent=marta)

    with django_assert_num_queries(1):
        rooms = customer_rooms(room_id=now.pk, agent_id=marta.pk)

    assert [room["id"] for room in rooms] == [second.pk, first.pk]
    assert rooms[0]["preview"] == "Otra consulta"
    assert rooms[0]["message_count"] == 3
    assert rooms[1]["agent_name"] == "Pedro"
    # The room's own detail carries who the customer is.
    detail = room_detail(Room.objects.select_related("customer", "agent").get(pk=now.pk))
    assert detail["customer"]["notes"] == "Cliente preferente: ofrecer la línea directa."
    assert detail["customer"]["first_contact"] == customer.created_at.isoformat()


def test_the_panel_of_a_room_that_is_not_the_agents_lists_nothing(marta, pedro):
    customer = CustomerFactory()
    closed_room(customer, pedro, "antes")
    now = Room.objects.create(customer=customer, status=Room.Status.ASSIGNED, agent=pedro)
    assert customer_rooms(room_id=now.pk, agent_id=marta.pk) == []


# --- reading a conversation ---------------------------------------------------------------------


def test_a_closed_conversation_reads_with_its_messages_notes_and_events(marta):
    room = closed_room(CustomerFactory(), marta, "Necesito ayuda")
    RoomNote.objects.create(room=room, author=marta, text="Verificado por teléfono")

    read = conversation_read(room)

    assert read["read_only"] is True
    assert [m["text"] for m in read["messages"]] == ["Necesito ayuda", "Con gusto."]
    assert [n["text"] for n in read["notes"]] == ["Verificado por teléfono"]
    assert [(e["kind"], e["agent"] or e["actor"]) for e in read["events"]] == [
        ("room.assigned", "Marta Gil"),
        ("room.closed", "Marta Gil"),
    ]
    assert read["events"][1]["reason"] == "Resuelto"


def test_who_may_read_a_conversation(marta, pedro):
    customer = CustomerFactory()
    pedros = closed_room(customer, pedro, "antes")
    stranger = closed_room(CustomerFactory(), pedro, "de otro")
    assert may_read_conversation(pedro, pedros)
    assert not may_read_conversation(marta, pedros)
    # Once Marta holds the customer's room, its earlier conversations are hers to read.
    Room.objects.create(customer=customer, status=Room.Status.ASSIGNED, agent=marta)
    assert may_read_conversation(marta, pedros)
    assert not may_read_conversation(marta, stranger)
    # An open room of another agent: never through this door.
    held = Room.objects.create(customer=CustomerFactory(), status=Room.Status.ASSIGNED, agent=pedro)
    assert not may_read_conversation(marta, held)
    assert not may_read_conversation(UserFactory(), stranger)  # not an agent


# --- the console's JSON ---------------------------------------------------------------------------


def test_the_views_answer_agents_only(client, marta, pedro):
    room = closed_room(CustomerFactory(name="Ana"), pedro, "tarjeta bloqueada")
    search = "/agent/search?q=tarjeta"
    conversation = f"/agent/conversations/{room.pk}"

    assert client.get(search).status_code == 401
    client.force_login(UserFactory())
    assert client.get(search).status_code == 403

    client.force_login(marta)
    assert client.get(search).json() == {"results": []}
    assert client.get(conversation).status_code == 404  # Pedro's: same answer as none at all
    assert client.get("/agent/conversations/999999").status_code == 404
    refused = client.get("/agent/search?q=x")
    assert refused.status_code == 400 and refused.json()["code"] == "invalid"

    client.force_login(pedro)
    assert [r["id"] for r in client.get(search).json()["results"]] == [room.pk]
    read = client.get(conversation).json()
    assert read["messages"][0]["text"] == "tarjeta bloqueada"
    assert client.post(search).status_code == 405  # reading only
