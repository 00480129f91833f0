"""Areas (teams): which queue a hand-off enters, and which areas an agent works.

A room enters the area Watson names in its `connect_to_agent`:
`transfer_info.target.chatbridge.area`, the area's code or its name (case ignored); a hand-off
naming none, or one chatbridge does not have, enters the area of the business number the
customer wrote to (rooms.WhatsAppNumber.area), else the default area. An agent works the areas
operators put them in, and the default area when they are in none, so an installation that
defines no areas has one queue, as before. A room with no area (made before areas existed) is
the default area's.
"""

import logging
from typing import Any

from django.db import IntegrityError
from django.db.models import Q

from rooms.models import Area

logger = logging.getLogger("chatbridge.assignment")

DEFAULT_CODE = "general"


def area_default() -> Area:
    """The default area: the one marked so (the admin keeps one marked; migration 0013 makes
    *General*). With none marked (a flushed test database), the "general" area, made again; and
    should its name be taken, the first area in the operators' order."""
    area = Area.objects.filter(is_default=True).first()
    if area is not None:
        return area
    try:
        area, _ = Area.objects.get_or_create(
            code=DEFAULT_CODE, defaults={"name": "General", "is_default": True}
        )
    except IntegrityError:  # another area is named General: never fail a hand-off over it
        fallback = Area.objects.first()
        if fallback is None:
            raise
        return fallback
    return area


def area_named(transfer_info: dict[str, Any] | None) -> str:
    """The area a hand-off's transfer_info names, as written ("" for none)."""
    target = (transfer_info or {}).get("target")
    chatbridge = target.get("chatbridge") if isinstance(target, dict) else None
    named = chatbridge.get("area") if isinstance(chatbridge, dict) else None
    return named.strip()[:100] if isinstance(named, str) else ""


def area_for_handoff(
    transfer_info: dict[str, Any] | None, *, default_id: int | None = None
) -> Area:
    """The area a hand-off enters (see the module's docstring); `default_id` is the area of the
    business number the customer wrote to (rooms/lines.py), if it has one, before the default."""
    named = area_named(transfer_info)
    if named:
        area = Area.objects.filter(Q(code__iexact=named) | Q(name__iexact=named)).first()
        if area is not None:
            return area
        logger.warning("hand-off names area %r, which does not exist: default area", named)
    if default_id is not None and (line_area := Area.objects.filter(pk=default_id).first()):
        return line_area
    return area_default()


def agent_area_ids(user_id: int) -> list[int]:
    """The areas an agent works: theirs, or the default one if they are in none."""
    return agents_area_ids([user_id])[user_id]


def agents_area_ids(user_ids: list[int]) -> dict[int, list[int]]:
    """The areas each of these agents works, in one query (and the default area's, once, for
    those in none)."""
    works: dict[int, list[int]] = {user_id: [] for user_id in user_ids}
    memberships = Area.agents.through.objects.filter(user_id__in=user_ids)
    for user_id, area_id in memberships.values_list("user_id", "area_id"):
        works[user_id].append(area_id)
    if any(not areas for areas in works.values()):
        default = area_default().pk
        works = {user_id: areas or [default] for user_id, areas in works.items()}
    return works


def in_areas(area_ids: list[int], *, field: str = "area") -> Q:
    """Rooms (or whatever has an `area`) in these areas; a room with none is the default's."""
    wanted = Q(**{f"{field}_id__in": area_ids})
    if area_default().pk in area_ids:
        wanted |= Q(**{f"{field}__isnull": True})
    return wanted


def room_area_id(area_id: int | None) -> int:
    """A room's area id, its default area's when it has none."""
    return area_id if area_id is not None else area_default().pk


def areas_data(user_id: int) -> list[dict[str, Any]]:
    """Every area, for a console: its name, and whether the agent works it (transfer targets
    are all of them)."""
    mine = set(agent_area_ids(user_id))
    return [
        {"id": area.pk, "name": area.name, "code": area.code, "mine": area.pk in mine}
        for area in Area.objects.all()
    ]
