"""Every write of a customer, the admin's included, flushes their cache entry once committed."""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from chatbridge.cache import flush_customer
from users.models import Customer


@receiver(post_save, sender=Customer)
@receiver(post_delete, sender=Customer)
def customer_flush(sender: type, instance: Customer, **kwargs: object) -> None:
    transaction.on_commit(partial(flush_customer, provider=instance.provider, uid=instance.uid))
