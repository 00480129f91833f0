"""Agents and the queue: taking, releasing, transferring, returning to the bot, auto-assignment.

Race-free by construction, where the original system checked then wrote:
- a room is claimed by locking its row and checking it is still queued: of two agents (or an
  agent and auto-assignment) taking it at once, exactly one wins, on any number of processes;
- an agent's load is counted from their assigned rooms while their profile row is locked, so two
  claims for one agent are serialised and the load never passes the capacity;
- locks are always taken agent profile first, then room, so claims cannot deadlock.
"""

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext_lazy
from django_stubs_ext import StrOrPromise

from chatbridge.locks import ASSIGNMENT, lock_for_transaction
from rooms import realtime
from rooms.areas import agent_area_ids, agents_area_ids, in_areas, room_area_id
from rooms.desk.selectors import agent_load, free_agents, is_agent, is_supervisor
from rooms.errors import ActionError
from rooms.events import queue_changed_on_commit, room_event_record
from rooms.models import Area, Room
from users.models import AgentProfile
from users.selectors import display_name
from users.services import agent_presence_end, agent_presence_seen, agent_presence_switch

logger = logging.getLogger("chatbridge.assignment")


# What an agent at their capacity is told, taking a room themselves or handing one to someone full.
YOU_ARE_FULL = ngettext_lazy(
    "You already have %(count)d conversation, your maximum: close or transfer it to take another.",
    "You already have %(count)d conversations, your maximum: close or transfer one to take "
    "another.",
    "count",
)
THEY_ARE_FULL = ngettext_lazy(
    "That agent already has %(count)d conversation, their maximum: choose someone else.",
    "That agent already has %(count)d conversations, their maximum: choose someone else.",
    "count",
)


def _claim_capacity(agent_id: int, *, full: StrOrPromise = YOU_ARE_FULL) -> AgentProfile:
    """Lock the agent's profile and check they can take one more room (ActionError `full`
    if not)."""
    profile = AgentProfile.objects.select_for_update().filter(user_id=agent_id).first()
    if profile is None:
        raise ActionError("not_an_agent", _("That person is not an agent."))
    if agent_load(agent_id) >= profile.capacity:
        raise ActionError("at_capacity", full, count=profile.capacity)
    return profile


def _locked_room(room_id: int) -> Room:
    room = (
        Room.objects.select_for_update(of=("self",))
        .select_related("customer")
        .filter(pk=room_id)
        .first()
    )
    if room is None:
        raise ActionError("not_found", _("This conversation no longer exists."))
    return room


TRANSFER_NOTE_MAX = 500


def _assign(room: Room, profile: AgentProfile, *, by: int | None, kind: str, extra: dict) -> None:
    now = timezone.now()
    previous = room.agent_id
    room.status, room.agent_id, room.assigned_at = Room.Status.ASSIGNED, profile.user_id, now
    room.first_assigned_at = room.first_assigned_at or now
    room.save(update_fields=["status", "agent", "assigned_at", "first_assigned_at"])
    profile.last_assigned_at = now
    profile.save(update_fields=["last_assigned_at"])
    data = {"agent": profile.user_id, "previous_agent": previous, "how": kind, **extra}
    room_event_record(
        room_id=room.pk,
        kind="room.assigned",
        data=data,
        actor_id=by,
        notify_agent_id=profile.user_id,
    )


def room_take(*, room_id: int, agent: User) -> Room:
    with transaction.atomic():
        profile = _claim_capacity(agent.pk)
        room = _locked_room(room_id)
        if room.status != Room.Status.QUEUED:
            raise _not_queued(room, agent)
        if room_area_id(room.area_id) not in agent_area_ids(agent.pk) and not is_supervisor(agent):
            raise ActionError("not_your_area", _("This conversation waits in another area."))
        _assign(room, profile, by=agent.pk, kind="taken", extra={})
        queue_changed_on_commit(room.area_id)
    logger.info("room %s taken by agent %s", room_id, agent.pk)
    return room


def _not_queued(room: Room, agent: User) -> ActionError:
    if room.status == Room.Status.ASSIGNED and room.agent_id == agent.pk:
        return ActionError("not_queued", _("This conversation is already yours."))
    if room.status == Room.Status.ASSIGNED:
        return ActionError("not_queued", _("Another agent already took this conversation."))
    if room.status == Room.Status.CLOSED:
        return ActionError("not_queued", _("This conversation has been closed."))
    return ActionError("not_queued", _("This conversation went back to the bot."))


def _own_room(room_id: int, agent: User) -> Room:
    room = _locked_room(room_id)
    if room.status != Room.Status.ASSIGNED or room.agent_id != agent.pk:
        raise ActionError("not_your_room", _("This conversation is not assigned to you."))
    return room


def room_release(*, room_id: int, agent: User) -> Room:
    """Back to the queue, at its original place: it has waited longest."""
    with transaction.atomic():
        room = _own_room(room_id, agent)
        room.status, room.agent_id = Room.Status.QUEUED, None
        room.save(update_fields=["status", "agent"])
        room_event_record(
            room_id=room.pk, kind="room.released", data={"agent": agent.pk}, actor_id=agent.pk
        )
        queue_changed_on_commit(room.area_id)
        transaction.on_commit(lambda: assignment_run(exclude=(room.pk, agent.pk)))
    logger.info("room %s released by agent %s", room_id, agent.pk)
    return room


def agent_rooms_release(*, user_id: int) -> int:
    """The rooms of a user who is no longer an agent go back to the queue; how many. Nothing for
    a user who still is one."""
    user = get_user_model().objects.filter(pk=user_id).first()
    if user is None or is_agent(user):
        return 0
    released = 0
    for room_id in Room.objects.filter(agent_id=user_id, status=Room.Status.ASSIGNED).values_list(
        "pk", flat=True
    ):
        try:
            room_release(room_id=room_id, agent=user)
        except ActionError:
            continue  # closed or moved meanwhile
        released += 1
    return released


def room_transfer(*, room_id: int, agent: User, to_agent_id: int, note: str = "") -> Room:
    """Hand the agent's room to another agent with free capacity; `note` (optional, for the
    receiving agent) travels in the assignment's event, with who sent it."""
    if not Room.objects.filter(pk=room_id, agent_id=agent.pk, status=Room.Status.ASSIGNED).exists():
        raise ActionError("not_your_room", _("This conversation is not assigned to you."))
    if to_agent_id == agent.pk:
        raise ActionError("invalid", _("This conversation is already yours: choose another agent."))
    _target_agent(to_agent_id)
    with transaction.atomic():
        profile = _claim_capacity(to_agent_id, full=THEY_ARE_FULL)
        room = _own_room(room_id, agent)
        extra = {"note": note.strip()[:TRANSFER_NOTE_MAX]} if note.strip() else {}
        _assign(room, profile, by=agent.pk, kind="transferred", extra=extra)
        # The sender has a free slot now: the queue may have a room for them.
        transaction.on_commit(assignment_run)
    logger.info("room %s transferred from agent %s to %s", room_id, agent.pk, to_agent_id)
    return room


def room_transfer_to_area(*, room_id: int, agent: User, area_id: int, note: str = "") -> Room:
    """Hand the agent's room to another area's queue (level 1 to level 2 and back), with an
    optional note for whoever takes it there. It keeps its place by its hand-off time: the
    customer has waited since then, and going to the back would make them wait twice."""
    target = Area.objects.filter(pk=area_id).first()
    if target is None:
        raise ActionError("not_found", _("There is no such area."))
    with transaction.atomic():
        room = _own_room(room_id, agent)
        if room_area_id(room.area_id) == target.pk:
            raise ActionError("invalid", _("This conversation is in that area already."))
        previous = room_area_id(room.area_id)
        room.status, room.agent_id, room.area = Room.Status.QUEUED, None, target
        data: dict[str, Any] = {"area": target.pk, "previous_area": previous, "agent": agent.pk}
        if note.strip():
            data["note"] = note.strip()[:TRANSFER_NOTE_MAX]
            # What the next area's agents read in their queue: this is its hand-off now.
            room.handoff_note = f"{display_name(agent)}: {data['note']}"
        room.save(update_fields=["status", "agent", "area", "handoff_note"])
        room_event_record(
            room_id=room.pk, kind="room.area_transferred", data=data, actor_id=agent.pk
        )
        queue_changed_on_commit(target.pk)
        # Not straight back to the agent who moved it, should they work that area too.
        transaction.on_commit(lambda: assignment_run(exclude=(room.pk, agent.pk)))
    logger.info("room %s moved by agent %s to area %s", room_id, agent.pk, target.pk)
    return room


def _target_agent(user_id: int) -> None:
    """Refuse a transfer or reassignment to someone who is not an agent."""
    target = get_user_model().objects.filter(pk=user_id).first()
    if target is None or not is_agent(target):
        raise ActionError("not_an_agent", _("That person is not an agent."))


def _supervising(user: User) -> None:
    if not is_supervisor(user):
        raise ActionError("not_a_supervisor", _("Only supervisors can do that."))


def room_reassign(*, room_id: int, supervisor: User, to_agent_id: int) -> Room:
    """A supervisor gives an open room (queued, or another agent's) to an agent with free
    capacity; the agent who had it, if any, is told by the assignment's event."""
    _supervising(supervisor)
    _target_agent(to_agent_id)
    with transaction.atomic():
        profile = _claim_capacity(to_agent_id, full=THEY_ARE_FULL)
        room = _locked_room(room_id)
        if room.status not in (Room.Status.QUEUED, Room.Status.ASSIGNED):
            raise _not_queued(room, supervisor)
        if room.agent_id == to_agent_id:
            raise ActionError("invalid", _("That agent has this conversation already."))
        was_queued = room.status == Room.Status.QUEUED
        _assign(room, profile, by=supervisor.pk, kind="reassigned", extra={})
        if was_queued:
            queue_changed_on_commit(room.area_id)
        transaction.on_commit(assignment_run)  # whoever had it has a free place now
    logger.info("room %s reassigned by %s to %s", room_id, supervisor.pk, to_agent_id)
    return room


def agent_available_set_by(*, supervisor: User, user_id: int, available: bool) -> None:
    """A supervisor switches an agent (available or not: the agent's own switch)."""
    _supervising(supervisor)
    if not AgentProfile.objects.filter(user_id=user_id).exists():
        raise ActionError("not_an_agent", _("That person is not an agent."))
    agent_available_set(user_id=user_id, available=available)
    # The agent's consoles show the switch as the supervisor left it.
    frame = {"type": "agent.available", "available": available, "by": supervisor.pk}
    transaction.on_commit(lambda: realtime.publish(realtime.agent_group_name(user_id), frame))


def room_return_to_bot(*, room_id: int, agent: User) -> Room:
    """The bot answers again; its Watson session continues if still alive, else a new one."""
    with transaction.atomic():
        room = _own_room(room_id, agent)
        room.status, room.agent_id = Room.Status.BOT, None
        room.save(update_fields=["status", "agent"])
        room_event_record(
            room_id=room.pk,
            kind="room.returned_to_bot",
            data={"agent": agent.pk},
            actor_id=agent.pk,
        )
        transaction.on_commit(assignment_run)
    logger.info("room %s returned to the bot by agent %s", room_id, agent.pk)
    return room


def assignment_run(exclude: tuple[int, int] | None = None) -> int:
    """Give queued rooms, oldest first, to the least-loaded online agents with free capacity.
    Returns how many rooms were assigned. `exclude` is (room, agent): a released room does not
    go straight back to the agent who released it."""
    if not settings.AUTO_ASSIGN:
        return 0
    assigned = 0
    while _assign_next(exclude):
        assigned += 1
    return assigned


def _assign_next(exclude: tuple[int, int] | None) -> bool:
    """The least-loaded free agent gets the longest-waiting room of their areas."""
    with transaction.atomic():
        # One auto-assignment at a time across processes; manual takes still go on beside it.
        lock_for_transaction(ASSIGNMENT, 0)
        if not Room.objects.filter(status=Room.Status.QUEUED).exists():
            return False
        free = free_agents()
        works = agents_area_ids([profile.user_id for profile in free])
        for profile in free:
            areas = works[profile.user_id]
            waiting = Room.objects.filter(in_areas(areas), status=Room.Status.QUEUED)
            if exclude is not None and exclude[1] == profile.user_id:
                waiting = waiting.exclude(pk=exclude[0])
            for room_id in waiting.order_by("queued_at", "id").values_list("id", flat=True)[:50]:
                try:
                    claimed = _claim_capacity(profile.user_id)
                except ActionError:
                    break  # filled up meanwhile by a manual take: next agent
                room = _locked_room(room_id)
                if room.status != Room.Status.QUEUED or room_area_id(room.area_id) not in areas:
                    continue  # taken meanwhile by hand, or moved to another area
                _assign(room, claimed, by=None, kind="auto", extra={})
                queue_changed_on_commit(room.area_id)
                logger.info("room %s auto-assigned to agent %s", room_id, profile.user_id)
                return True
        return False


# A console's connect and heartbeat, and its close: the desk's presence (the profile's
# last_seen_at) and the reports' record of it (users.AgentPresence), one more statement a beat.


def agent_seen(*, user_id: int) -> None:
    now = timezone.now()
    AgentProfile.objects.filter(user_id=user_id).update(last_seen_at=now)
    agent_presence_seen(user_id=user_id, now=now)


def agent_gone(*, user_id: int) -> None:
    AgentProfile.objects.filter(user_id=user_id).update(last_seen_at=None)
    agent_presence_end(user_id=user_id, now=timezone.now())


def agent_available_set(*, user_id: int, available: bool) -> None:
    with transaction.atomic():
        AgentProfile.objects.filter(user_id=user_id).update(available=available)
        agent_presence_switch(user_id=user_id, available=available, now=timezone.now())
        if available:
            transaction.on_commit(assignment_run)
