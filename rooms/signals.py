"""Every write of a room, the admin's included, flushes its cache entries once committed."""

from django.core.signals import setting_changed
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from chatbridge.cache import flush_active_room, flush_room_metrics
from rooms.models import Room
from rooms.whatsapp.client import whatsapp_client
from users.models import Customer


@receiver(post_save, sender=Room)
@receiver(post_delete, sender=Room)
def room_flush(sender: type, instance: Room, **kwargs: object) -> None:
    if Room.customer.is_cached(instance):
        provider, uid = instance.customer.provider, instance.customer.uid
    else:
        provider, uid = Customer.objects.values_list("provider", "uid").get(pk=instance.customer_id)
    room_id = instance.pk

    def flush() -> None:
        flush_active_room(provider=provider, uid=uid)
        flush_room_metrics(room_id=room_id)

    transaction.on_commit(flush)


@receiver(setting_changed)
def whatsapp_client_reset(**kwargs: object) -> None:
    whatsapp_client.cache_clear()
