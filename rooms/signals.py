"""Every write of a room, the admin's included, flushes its cache entries once committed; every
change to a user's access tells their open consoles to look again."""

from typing import Any

from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import Group, User
from django.contrib.sessions.models import Session
from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save
from django.dispatch import Signal, receiver

from chatbridge.cache import flush_active_room, flush_lines, flush_room_metrics
from rooms import realtime
from rooms.models import Area, Room, WhatsAppNumber
from rooms.providers.twilio import twilio_client
from rooms.whatsapp.client import whatsapp_client
from users.models import Customer


@receiver(post_save, sender=Room)
@receiver(post_delete, sender=Room)
def room_flush(sender: type, instance: Room, **kwargs: object) -> None:
    if Room.customer.is_cached(instance):
        provider, uid = instance.customer.provider, instance.customer.uid
    else:
        provider, uid = Customer.objects.values_list("provider", "uid").get(pk=instance.customer_id)
    room_id, line = instance.pk, instance.line

    def flush() -> None:
        flush_active_room(provider=provider, uid=uid, line=line)
        flush_room_metrics(room_id=room_id)

    transaction.on_commit(flush)


@receiver(post_save, sender=WhatsAppNumber)
@receiver(post_delete, sender=WhatsAppNumber)
def lines_flush(sender: type, instance: WhatsAppNumber, **kwargs: object) -> None:
    """A number registered, changed or switched off: every process reads the registry again."""
    transaction.on_commit(flush_lines)


@receiver(setting_changed)
def vendor_clients_reset(**kwargs: object) -> None:
    whatsapp_client.cache_clear()
    twilio_client.cache_clear()


# --- a user's access changed: their consoles check their session again (rooms/consumers.py) ---


# Sent once committed, with the ids of users whose access to the desk may have changed (the desk
# gives the rooms of those who are no longer agents back to the queue: rooms/desk/receivers.py).
agent_access_changed = Signal()


def access_changed(user_ids: set[int]) -> None:
    """Once committed, each of these users' consoles re-checks its own session and closes if it
    no longer makes them an agent; then `agent_access_changed` is sent."""

    def notify() -> None:
        for user_id in user_ids:
            realtime.publish(realtime.agent_group_name(user_id), {"type": "agent.access"})
        agent_access_changed.send(sender=None, user_ids=user_ids)

    if user_ids:
        transaction.on_commit(notify)


@receiver(post_save, sender=User)
def user_saved(
    sender: type, instance: User, created: bool, update_fields: Any = None, **kwargs: object
) -> None:
    # Deactivated, a password changed in the admin, staff removed: whatever it was, look again
    # (but not for the login's own `last_login`).
    if not created and set(update_fields or ()) != {"last_login"}:
        access_changed({instance.pk})


@receiver(m2m_changed, sender=User.groups.through)
def user_groups_changed(
    sender: type, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action not in ("post_remove", "pre_clear"):
        return
    if not reverse:  # a user's groups were edited
        access_changed({instance.pk})
    elif action == "post_remove":  # users were taken out of a group
        access_changed(set(pk_set or ()))
    elif isinstance(instance, Group):  # a group is about to lose all its users
        access_changed(set(instance.user_set.values_list("pk", flat=True)))


@receiver(post_delete, sender=Session)
def session_deleted(sender: type, instance: Session, **kwargs: object) -> None:
    # A logout, the admin deleting sessions, clearsessions: the console on it must end.
    user_id = instance.get_decoded().get(SESSION_KEY)
    if user_id is not None and str(user_id).isdigit():
        access_changed({int(user_id)})


# --- an agent's areas changed: their consoles show the queues of the areas they work now -------


@receiver(m2m_changed, sender=Area.agents.through)
def agent_areas_changed(
    sender: type, instance: object, action: str, pk_set: set[int] | None, **_: Any
) -> None:
    """Changed from the area's side (`area.agents`), pk_set holds users; from the user's side
    (`user.areas`), the user is the instance. A clear names nobody after the fact: who was there
    is read before it."""
    if action == "pre_clear" and isinstance(instance, Area):
        instance._agents_cleared = set(instance.agents.values_list("pk", flat=True))  # type: ignore[attr-defined]
        return
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if isinstance(instance, Area):
        user_ids = set(
            getattr(instance, "_agents_cleared", set()) if action == "post_clear" else pk_set or ()
        )
    else:
        user_ids = {getattr(instance, "pk", 0)}

    def notify() -> None:
        for user_id in user_ids:
            realtime.publish(realtime.agent_group_name(user_id), {"type": "agent.areas"})

    transaction.on_commit(notify)


@receiver(post_save, sender=Area)
def area_saved(sender: type, instance: Area, **kwargs: Any) -> None:
    """An area made or changed (a supervisor's console shows every area's queue; agents in no
    area work the default one): every console takes a fresh snapshot. Areas change seldom."""
    transaction.on_commit(lambda: realtime.publish(realtime.AGENTS_GROUP, {"type": "agent.areas"}))
