"""An agent who stops being one (deactivated, taken out of the `agents` group) gives their rooms
back to the queue, so that no customer waits on someone who can no longer answer. Their open
consoles are closed by rooms/signals.py, which tells us whose access changed."""

from django.dispatch import receiver

from rooms.desk.assignment import agent_rooms_release
from rooms.signals import agent_access_changed


@receiver(agent_access_changed)
def former_agents_rooms_release(sender: object, user_ids: set[int], **kwargs: object) -> None:
    for user_id in user_ids:
        agent_rooms_release(user_id=user_id)
