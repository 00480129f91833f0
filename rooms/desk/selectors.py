"""What the desk reads: agents and their live load, a console's snapshot and replays, the
operators' figures. Loads are counted from assignments, never from a stored counter."""

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth import HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import AnonymousUser, User
from django.contrib.sessions.models import Session
from django.db.models import Count, F, Max, Min, Q
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from prometheus_client.core import GaugeMetricFamily

from chatbridge.cache import (
    ROOM_METRICS_TTL,
    cache_get,
    cache_set,
    room_metrics_cache_key,
    stats,
)
from rooms.areas import agent_area_ids, agents_area_ids, area_default, areas_data
from rooms.desk.alerts import alerts_recent
from rooms.events import (
    canned_replies_data,
    event_frame,
    queue_data,
    room_data,
    room_detail,
    templates_data,
)
from rooms.lines import lines
from rooms.models import Area, ClosureReason, Message, Room, RoomEvent
from users.models import AgentProfile
from users.selectors import AGENTS_GROUP, SUPERVISORS_GROUP, display_name

# The operations page's message rate is counted over this window.
RATE_WINDOW = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class AgentLoad:
    id: int
    name: str
    capacity: int
    load: int
    online: bool
    available: bool


def is_agent(user: User | AnonymousUser) -> bool:
    if not isinstance(user, User):
        return False  # not logged in
    return bool(
        user.is_active and (user.is_staff or user.groups.filter(name=AGENTS_GROUP).exists())
    )


def is_supervisor(user: User | AnonymousUser) -> bool:
    """An agent in the `supervisors` group: they see every area, agent and open room, and may
    move, take or close any room and switch an agent to unavailable."""
    return (
        is_agent(user)
        and isinstance(user, User)
        and (user.is_superuser or user.groups.filter(name=SUPERVISORS_GROUP).exists())
    )


def may_see_room(user: User | AnonymousUser, room: Room) -> bool:
    """Whether `user` may read this room's messages and files: the agent it is assigned to, a
    supervisor while it is open, or staff allowed to view messages."""
    if not isinstance(user, User) or not user.is_active:
        return False
    if room.status == Room.Status.ASSIGNED and room.agent_id == user.pk and is_agent(user):
        return True
    if room.status != Room.Status.CLOSED and is_supervisor(user):
        return True
    return user.is_staff and user.has_perm("rooms.view_message")


class Access(StrEnum):
    """What a console's session still allows (rooms/consumers.py closes the socket otherwise)."""

    AGENT = "agent"
    SIGNED_OUT = "signed_out"  # the session was deleted, expired, or belongs to no active user
    NOT_AN_AGENT = "not_an_agent"  # still signed in, but no longer in the agents group


@dataclass(frozen=True)
class SessionAccess:
    access: Access
    expires_at: dt.datetime | None = None
    supervisor: bool = False  # read afresh too: a supervisor removed from the group is not one


def agent_access(*, session_key: str | None, user_id: int) -> SessionAccess:
    """Whether the session a console connected with is still its agent's, read afresh: a
    deactivated user, a deleted or expired session, a changed password (the session's hash no
    longer matches) and a removed group all end it."""
    session = (
        Session.objects.filter(session_key=session_key or "", expire_date__gt=timezone.now())
        .only("session_data", "expire_date")
        .first()
    )
    user = User.objects.filter(pk=user_id, is_active=True).first()
    if session is None or user is None:
        return SessionAccess(Access.SIGNED_OUT)
    data = session.get_decoded()
    given = str(data.get(HASH_SESSION_KEY, ""))
    # As django.contrib.auth.get_user: a session signed with a SECRET_KEY_FALLBACKS key holds.
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if str(data.get(SESSION_KEY)) != str(user_id) or not any(
        constant_time_compare(given, known) for known in hashes
    ):
        return SessionAccess(Access.SIGNED_OUT)
    if not is_agent(user):
        return SessionAccess(Access.NOT_AN_AGENT, session.expire_date)
    return SessionAccess(Access.AGENT, session.expire_date, supervisor=is_supervisor(user))


def agent_profile(user: User) -> AgentProfile:
    """The agent's profile, made with the defaults on first use."""
    profile, _ = AgentProfile.objects.get_or_create(user=user)
    return profile


def online_since() -> dt.datetime:
    return timezone.now() - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)


def _with_load(profiles: Any) -> Any:
    return profiles.filter(Q(user__groups__name=AGENTS_GROUP) | Q(user__is_staff=True)).annotate(
        load=Count("user__rooms", filter=Q(user__rooms__status=Room.Status.ASSIGNED), distinct=True)
    )


def agents_list() -> list[AgentLoad]:
    """Every agent with their live load."""
    profiles = (
        _with_load(AgentProfile.objects.filter(user__is_active=True))
        .select_related("user")
        .distinct()
        .order_by("user__username")
    )
    since = online_since()
    return [
        AgentLoad(
            id=profile.user_id,
            name=display_name(profile.user),
            capacity=profile.capacity,
            load=profile.load,
            online=bool(profile.last_seen_at and profile.last_seen_at >= since),
            available=profile.available,
        )
        for profile in profiles
    ]


def agent_load(user_id: int) -> int:
    return Room.objects.filter(agent_id=user_id, status=Room.Status.ASSIGNED).count()


def free_agents() -> list[AgentProfile]:
    """Online, available agents with room to spare: least loaded first, then whoever waited
    longest for a room."""
    profiles = AgentProfile.objects.filter(
        available=True, last_seen_at__gte=online_since(), user__is_active=True
    )
    return list(
        _with_load(profiles)
        .filter(load__lt=F("capacity"))
        .distinct()
        .order_by("load", F("last_assigned_at").asc(nulls_first=True), "user_id")
    )


def free_agent_exists(*, area_id: int | None = None) -> bool:
    """Whether a hand-off now would find an online agent with room to spare (one who works
    `area_id`, when given)."""
    free = free_agents()
    if area_id is None:
        return bool(free)
    works = agents_area_ids([profile.user_id for profile in free])
    return any(area_id in areas for areas in works.values())


def agent_snapshot(*, user: Any) -> dict[str, Any]:
    """What a console needs on (re)connect: the agent, the queue, their rooms, the other agents
    (transfer targets) and the closure reasons."""
    profile = agent_profile(user)
    rooms = (
        Room.objects.filter(agent_id=user.pk, status=Room.Status.ASSIGNED)
        .select_related("customer", "agent")
        .order_by("assigned_at", "id")
    )
    supervisor = is_supervisor(user)
    # The queues the console shows: the agent's areas; a supervisor's, every area's.
    queue_areas = (
        [area.pk for area in Area.objects.all()] or [area_default().pk]
        if supervisor
        else agent_area_ids(user.pk)
    )
    return {
        "supervisor": supervisor,
        "queue_areas": queue_areas,
        "agent": {
            "id": user.pk,
            "name": display_name(user),
            "capacity": profile.capacity,
            "load": agent_load(user.pk),
            "available": profile.available,
        },
        "queue": queue_data(area_ids=queue_areas),
        "areas": areas_data(user.pk),
        "default_area": area_default().pk,
        # The registered business numbers' names, by Room.line (the main number has none).
        "lines": {line.key: line.name for line in lines().values() if line.name},
        "rooms": [room_detail(room) for room in rooms],
        "agents": [vars(agent) for agent in agents_list()],
        # Each with its area (none: every area's); the console offers a room its area's.
        "closure_reasons": list(
            ClosureReason.objects.filter(active=True).values("id", "title", "area")
        ),
        "templates": templates_data(),
        "canned_replies": canned_replies_data(),
        # Messages show their times where the bank works.
        "timezone": settings.BUSINESS_TIMEZONE,
    }


def desk_overview() -> dict[str, Any]:
    """A supervisor's view of the desk now: every agent with their load and when they last wrote
    to a customer, and every open room (queued or with an agent), longest waiting first."""
    now = timezone.now()
    last_replies = dict(
        Message.objects.filter(
            author=Message.Author.AGENT, created_at__gte=now - dt.timedelta(days=1)
        )
        .values("agent_id")
        .annotate(last=Max("created_at"))
        .values_list("agent_id", "last")
    )
    agents = [
        {**vars(agent), "last_reply_at": _iso(last_replies.get(agent.id))}
        for agent in agents_list()
    ]
    rooms = (
        Room.objects.filter(status__in=[Room.Status.QUEUED, Room.Status.ASSIGNED])
        .select_related("customer", "agent")
        .order_by("queued_at", "id")[:OVERVIEW_ROOMS]
    )
    return {
        "alerts": alerts_recent(),
        "agents": agents,
        "rooms": [
            {
                **room_data(room),
                "agent_name": display_name(room.agent) if room.agent else "",
                "last_customer_at": _iso(room.last_customer_at),
            }
            for room in rooms
        ],
    }


OVERVIEW_ROOMS = 500


def _iso(when: dt.datetime | None) -> str | None:
    return when.isoformat() if when else None


def room_detail_open(*, room_id: int) -> dict[str, Any] | None:
    """An open room's detail, for a supervisor reading it."""
    room = (
        Room.objects.filter(pk=room_id)
        .exclude(status=Room.Status.CLOSED)
        .select_related("customer", "agent")
        .first()
    )
    return room_detail(room) if room else None


def room_detail_for_agent(*, room_id: int, agent_id: int) -> dict[str, Any] | None:
    room = (
        Room.objects.filter(pk=room_id, agent_id=agent_id, status=Room.Status.ASSIGNED)
        .select_related("customer", "agent")
        .first()
    )
    return room_detail(room) if room else None


def room_events_after(*, room_id: int, after: int, until: int | None = None) -> list[dict]:
    events = RoomEvent.objects.filter(room_id=room_id, seq__gt=after).order_by("seq")
    if until is not None:
        events = events.filter(seq__lte=until)
    return [event_frame(event) for event in events[:1000]]


def room_seqs(*, room_ids: list[int]) -> dict[str, int]:
    return {
        str(room_id): seq
        for room_id, seq in Room.objects.filter(pk__in=room_ids).values_list("id", "event_seq")
    }


def closure_reason_get(*, reason_id: int) -> ClosureReason | None:
    return ClosureReason.objects.filter(pk=reason_id, active=True).first()


# --- operators ----------------------------------------------------------------------------------


def room_metrics_get(*, room_id: int) -> dict[str, Any]:
    """Message counts for operators, cached briefly."""
    key = room_metrics_cache_key(room_id=room_id)
    cached = cache_get(key)
    if cached is not None:
        return cached
    metrics = Message.objects.filter(room_id=room_id).aggregate(
        messages=Count("id"),
        from_customer=Count("id", filter=Q(author=Message.Author.CUSTOMER)),
        from_bot=Count("id", filter=Q(author=Message.Author.BOT)),
        from_agents=Count("id", filter=Q(author=Message.Author.AGENT)),
        failed_sends=Count("id", filter=Q(status=Message.Status.FAILED)),
        last_message_at=Max("created_at"),
    )
    cache_set(key, metrics, ttl=ROOM_METRICS_TTL)
    return metrics


def operations_summary() -> dict[str, Any]:
    """The admin's Operations page: what chatbridge is doing now."""
    now = timezone.now()
    queue = Room.objects.filter(status=Room.Status.QUEUED).aggregate(
        length=Count("id"), oldest=Min("queued_at")
    )
    recent = Message.objects.filter(created_at__gte=now - RATE_WINDOW).aggregate(
        inbound=Count("id", filter=Q(direction=Message.Direction.INBOUND)),
        outbound=Count("id", filter=Q(direction=Message.Direction.OUTBOUND)),
    )
    minutes = RATE_WINDOW.total_seconds() / 60
    failed = (
        Message.objects.filter(
            status=Message.Status.FAILED, updated_at__gte=now - dt.timedelta(days=1)
        )
        .select_related("room__customer")
        .order_by("-updated_at")
    )
    agents = agents_list()
    return {
        "cache": stats.totals(),
        "queue_length": queue["length"],
        "queue_oldest": (now - queue["oldest"]) if queue["oldest"] else None,
        "rooms_by_status": dict(
            Room.objects.values_list("status").annotate(n=Count("id")).order_by()
        ),
        "agents": agents,
        "agents_online": sum(1 for agent in agents if agent.online),
        "inbound_per_minute": recent["inbound"] / minutes,
        "outbound_per_minute": recent["outbound"] / minutes,
        "failed_count": failed.count(),
        "failed": failed[:20],
    }


class QueueCollector:
    """Queue figures read from PostgreSQL at scrape time (one query), not kept in a gauge that
    every process would have to agree on. Registered by rooms' AppConfig.ready."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        queue = Room.objects.filter(status=Room.Status.QUEUED).aggregate(
            length=Count("id"), oldest=Min("queued_at")
        )
        age = (timezone.now() - queue["oldest"]).total_seconds() if queue["oldest"] else 0.0
        yield GaugeMetricFamily(
            "chatbridge_queue_length", "Rooms waiting for an agent.", value=queue["length"]
        )
        yield GaugeMetricFamily(
            "chatbridge_queue_oldest_seconds",
            "How long the oldest queued room has waited.",
            value=age,
        )
