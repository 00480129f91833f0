"""An agent who stops being one (deactivated, taken out of the `agents` group) gives their rooms
back to the queue, so that no customer waits on someone who can no longer answer. Their open
consoles are closed by rooms/signals.py."""

from typing import Any

from django.contrib.auth.models import Group, User
from django.db import transaction
from django.db.models.signals import m2m_changed, post_save
from django.dispatch import receiver

from rooms.desk.assignment import agent_rooms_release


def _release_if_no_longer_agents(user_ids: set[int]) -> None:
    def release() -> None:
        for user_id in user_ids:
            agent_rooms_release(user_id=user_id)

    if user_ids:
        transaction.on_commit(release)


@receiver(post_save, sender=User)
def agent_saved(
    sender: type, instance: User, created: bool, update_fields: Any = None, **kwargs: object
) -> None:
    if not created and set(update_fields or ()) != {"last_login"}:
        _release_if_no_longer_agents({instance.pk})


@receiver(m2m_changed, sender=User.groups.through)
def agent_groups_changed(
    sender: type, instance: Any, action: str, reverse: bool, pk_set: set[int] | None, **kwargs: Any
) -> None:
    if action == "post_remove":
        _release_if_no_longer_agents(set(pk_set or ()) if reverse else {instance.pk})
    elif action == "pre_clear":
        if isinstance(instance, Group):
            _release_if_no_longer_agents(set(instance.user_set.values_list("pk", flat=True)))
        else:
            _release_if_no_longer_agents({instance.pk})
