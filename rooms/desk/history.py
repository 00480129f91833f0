"""What an agent reads of the past: a customer's earlier conversations (the room's customer
panel), a closed conversation read-only with its events, and the search over closed ones.

The search reads PostgreSQL's full-text index of message texts (migration 0012: Spanish
stemming with accents ignored, so "credito" finds "crédito"); the embedded SQLite run of
`make run` falls back to a plain substring match.
"""

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.postgres.search import SearchHeadline, SearchQuery, SearchVector
from django.db import connection
from django.db.models import Count, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Substr
from django.utils.translation import gettext_lazy as _

from rooms.desk.selectors import is_agent
from rooms.errors import ActionError
from rooms.events import customer_number, message_data, note_data, room_data
from rooms.models import Message, Room, RoomEvent, Survey
from users.selectors import display_name

# The text search configuration of migration 0012, and the expression its index is built on:
# a search uses the index only if it asks with this very expression.
SEARCH_CONFIG = "chatbridge_spanish"
SEARCH_DOCUMENT = SearchVector("text", config=SEARCH_CONFIG)
SEARCH_MIN_CHARS = 2
SEARCH_MAX_CHARS = 200
SEARCH_RESULTS = 50
# A number is searched by its digits once it has this many (fewer match half the customers).
NUMBER_MIN_DIGITS = 4
PANEL_ROOMS = 50
PREVIEW_CHARS = 120
CONVERSATION_MESSAGES_MAX = 2000
# Marks around the matched words of a snippet: control characters no message text carries
# (the console turns them into highlighting, as text, never as HTML).
MATCH_START, MATCH_END = "\x02", "\x03"


def may_read_conversation(user: User | AnonymousUser, room: Room) -> bool:
    """Staff who may view messages read any conversation; an agent reads a closed one they
    handled (the last agent of it, or one who wrote in it) and the earlier conversations of a
    customer whose room they hold now. Nobody else, and no agent reads another's open room."""
    if not isinstance(user, User) or not user.is_active:
        return False
    if user.is_staff and user.has_perm("rooms.view_message"):
        return True
    if not is_agent(user) or room.status != Room.Status.CLOSED:
        return False
    if room.agent_id == user.pk or room.messages.filter(agent_id=user.pk).exists():
        return True
    return Room.objects.filter(
        customer_id=room.customer_id, agent_id=user.pk, status=Room.Status.ASSIGNED
    ).exists()


def customer_rooms(*, room_id: int, agent_id: int) -> list[dict[str, Any]]:
    """The closed conversations of the customer of room `room_id`, newest first, if the room is
    `agent_id`'s now (otherwise none): the customer panel's list, in one query."""
    held = Room.objects.filter(pk=room_id, agent_id=agent_id, status=Room.Status.ASSIGNED)
    earlier = Room.objects.filter(
        customer_id=Subquery(held.values("customer_id")), status=Room.Status.CLOSED
    )
    return [_summary(room) for room in _summarised(earlier)[:PANEL_ROOMS]]


def conversation_read(room: Room) -> dict[str, Any]:
    """A conversation as it happened, to read (never to act on): its messages, its agents'
    notes, and its events (assignments, transfers, the close) with the names of who did them."""
    messages = room.messages.order_by("id")[:CONVERSATION_MESSAGES_MAX]
    notes = room.notes.select_related("author").order_by("id")
    # Messages are listed above; their events would repeat them.
    events = list(room.events.exclude(kind__startswith="message.").order_by("seq"))
    people = _people(events)
    return {
        **_summary(room),
        "messages": [message_data(message) for message in messages],
        "notes": [note_data(note) for note in notes],
        "events": [
            {
                "kind": event.kind,
                "at": event.created_at.isoformat(),
                "actor": people.get(event.actor_id or 0, ""),
                "agent": people.get(_as_int(event.data.get("agent")), ""),
                "previous_agent": people.get(_as_int(event.data.get("previous_agent")), ""),
                "how": event.data.get("how", ""),
                "reason": event.data.get("reason", ""),
                "note": event.data.get("note", ""),
            }
            for event in events
        ],
        "read_only": True,
    }


def conversations_search(*, user: User, text: str) -> list[dict[str, Any]]:
    """Closed conversations whose customer's number or name, or whose messages' words, match
    `text`: the agent's own (staff who may view messages: everyone's), newest first."""
    words = " ".join(text.split())
    if not SEARCH_MIN_CHARS <= len(words) <= SEARCH_MAX_CHARS:
        raise ActionError(
            "invalid",
            _("Search with %(least)d to %(most)d characters."),
            least=SEARCH_MIN_CHARS,
            most=SEARCH_MAX_CHARS,
        )
    found = Q(customer__name__icontains=words) | Q(customer__profile_name__icontains=words)
    digits = re.sub(r"[\s+().-]", "", words)
    staff = user.is_staff and user.has_perm("rooms.view_message")
    if digits.isdigit() and len(digits) >= NUMBER_MIN_DIGITS:
        if settings.AGENT_NUMBER_DISPLAY == "masked" and not staff:
            # Agents who see numbers masked find a customer by the whole number, or by the last
            # four digits they see: never by pieces, which would give the hidden ones away.
            visible = len(digits) == NUMBER_MIN_DIGITS
            found |= Q(customer__uid__endswith=digits) if visible else Q(customer__uid=digits)
        else:
            found |= Q(customer__uid__contains=digits)
    found |= Q(pk__in=messages_matching(words).values("room_id"))
    rooms = Room.objects.filter(status=Room.Status.CLOSED).filter(found)
    if not staff:
        handled = Message.objects.filter(agent_id=user.pk).values("room_id")
        rooms = rooms.filter(Q(agent_id=user.pk) | Q(pk__in=handled))
    page = list(_summarised(rooms)[:SEARCH_RESULTS])
    snippets = _snippets(words, [room.pk for room in page])
    return [{**_summary(room), "snippet": snippets.get(room.pk, "")} for room in page]


def _summarised(rooms: QuerySet[Room]) -> QuerySet[Room]:
    first_words = (
        Message.objects.filter(room=OuterRef("pk"), direction=Message.Direction.INBOUND)
        .exclude(text="")
        .order_by("id")
        .values("text")[:1]
    )
    counted = Message.objects.filter(room=OuterRef("pk")).order_by().values("room")
    return (
        rooms.select_related("customer", "agent", "survey")
        .annotate(
            first_words=Substr(Subquery(first_words), 1, PREVIEW_CHARS),
            message_count=Subquery(counted.annotate(n=Count("id")).values("n")),
        )
        .order_by("-closed_at", "-id")
    )


def _summary(room: Room) -> dict[str, Any]:
    agent = room.agent
    return {
        **room_data(room),
        "customer": {
            "id": room.customer_id,
            "name": room.customer.name,
            "number": customer_number(room.customer.uid),
        },
        "closed_at": room.closed_at.isoformat() if room.closed_at else None,
        "closed_reason": room.closed_reason,
        "agent_name": display_name(agent) if agent else "",
        "preview": getattr(room, "first_words", None) or "",
        "message_count": getattr(room, "message_count", None) or 0,
        "survey": survey_result(room),
    }


def survey_result(room: Room) -> dict[str, Any] | None:
    """The customer's answers to the room's survey, once complete (as the original: the agent
    sees the result, never a survey half answered)."""
    try:
        survey = room.survey
    except Survey.DoesNotExist:
        return None
    if not survey.is_complete:
        return None
    return {
        "nps": survey.nps,
        "resolved": survey.resolved,
        "satisfaction": survey.satisfaction,
        "comment": survey.comment,
    }


def messages_matching(words: str) -> QuerySet[Message]:
    if connection.vendor != "postgresql":
        return Message.objects.filter(text__icontains=words)
    query = SearchQuery(words, config=SEARCH_CONFIG, search_type="websearch")
    return Message.objects.annotate(document=SEARCH_DOCUMENT).filter(document=query)


def _snippets(words: str, room_ids: list[int]) -> dict[int, str]:
    """For each room, its first matching message's words around the match (one query)."""
    if not room_ids:
        return {}
    matching = messages_matching(words).filter(room_id__in=room_ids)
    if connection.vendor != "postgresql":
        first: dict[int, str] = {}
        for room_id, text in matching.order_by("id").values_list("room_id", "text"):
            first.setdefault(room_id, _around(text, words))
        return first
    headline = SearchHeadline(
        "text",
        SearchQuery(words, config=SEARCH_CONFIG, search_type="websearch"),
        config=SEARCH_CONFIG,
        start_sel=MATCH_START,
        stop_sel=MATCH_END,
        max_words=24,
        min_words=8,
    )
    # The first matching message of each room, then the headline of those alone (ts_headline
    # over every match of 50 long rooms would be most of the search's time).
    firsts = matching.order_by("room_id", "id").distinct("room_id").values("id")
    rows = (
        Message.objects.filter(id__in=Subquery(firsts))
        .annotate(snippet=headline)
        .values_list("room_id", "snippet")
    )
    return dict(rows)


def _around(text: str, words: str) -> str:
    at = text.lower().find(words.lower())
    if at < 0:
        return text[:PREVIEW_CHARS]
    start = max(0, at - 40)
    end = at + len(words)
    return f"{text[start:at]}{MATCH_START}{text[at:end]}{MATCH_END}{text[end : end + 60]}"


def _people(events: list[RoomEvent]) -> dict[int, str]:
    ids = {event.actor_id for event in events if event.actor_id}
    for event in events:
        for key in ("agent", "previous_agent"):
            value = _as_int(event.data.get(key))
            if value:
                ids.add(value)
    users = User.objects.filter(pk__in=ids) if ids else User.objects.none()
    return {user.pk: display_name(user) for user in users}


def _as_int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
