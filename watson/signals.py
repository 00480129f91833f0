"""A replaced or deleted session flushes its cached id once committed; setting changes (tests)
rebuild the client."""

from functools import partial

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from chatbridge.cache import flush_watson_session
from watson.client import watson_client
from watson.models import WatsonSession


@receiver(post_save, sender=WatsonSession)
@receiver(post_delete, sender=WatsonSession)
def watson_session_flush(sender: type, instance: WatsonSession, **kwargs: object) -> None:
    transaction.on_commit(partial(flush_watson_session, room_id=instance.room_id))


@receiver(setting_changed)
def watson_client_reset(**kwargs: object) -> None:
    watson_client.cache_clear()
