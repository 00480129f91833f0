from axes.handlers.proxy import AxesProxyHandler
from django.db import IntegrityError, transaction

from chatbridge.cache import (
    CUSTOMER_TTL,
    cache_set,
    customer_cache_key,
    flush_active_room,
    flush_customer,
)
from users.models import Customer
from users.selectors import CustomerRef


def customer_get_or_create(
    *,
    provider: str,
    uid: str,
    wa_id: str,
    user_id: str,
    name: str,
    cached: CustomerRef | None = None,
) -> CustomerRef:
    """The customer writing now, from the cache when it holds them as they are."""
    if (
        cached is not None
        and (cached.name == name or not name)
        and (cached.user_id == user_id or not user_id)
    ):
        return cached
    defaults = {"wa_id": wa_id, "user_id": user_id, "profile_name": name, "name": name}
    try:
        customer, created = Customer.objects.get_or_create(
            provider=provider, uid=uid, defaults=defaults
        )
    except IntegrityError:
        # Two first messages of a new customer at once: the other insert won.
        customer, created = Customer.objects.get(provider=provider, uid=uid), False
    if not created:
        changed = {
            field: value
            for field, value in defaults.items()
            if value and getattr(customer, field) != value
        }
        if customer.name_edited:
            changed.pop("name", None)  # the operator's name wins over the profile's
        if changed:
            for field, value in changed.items():
                setattr(customer, field, value)
            customer.save(update_fields=[*changed, "updated_at"])  # flushes its cache entry
    ref = CustomerRef.of(customer)
    transaction.on_commit(lambda: customer_cache_fill(ref))
    return ref


def customer_number_change(*, provider: str, uid: str, new_wa_id: str) -> bool:
    """WhatsApp says this customer now writes from `new_wa_id`: the same customer (rooms,
    history) under the new number. False if nothing changed (unknown customer, or the new
    number already is a customer of its own: both are kept, for an operator to see)."""
    with transaction.atomic():
        customer = Customer.objects.select_for_update().filter(provider=provider, uid=uid).first()
        if customer is None or customer.uid == new_wa_id:
            return False
        if Customer.objects.filter(provider=provider, uid=new_wa_id).exists():
            return False
        customer.uid = customer.wa_id = new_wa_id
        customer.save(update_fields=["uid", "wa_id", "updated_at"])

        def flush_old() -> None:
            flush_customer(provider=provider, uid=uid)
            flush_active_room(provider=provider, uid=uid)

        transaction.on_commit(flush_old)
    return True


def customer_cache_fill(ref: CustomerRef) -> None:
    key = customer_cache_key(provider=ref.provider, uid=ref.uid)
    cache_set(key, ref.to_cache(), ttl=CUSTOMER_TTL)


def login_failures_prune() -> int:
    """Forget failed logins older than a day; returns how many.

    axes drops an address's or a username's count by itself once LOGIN_ATTEMPTS_WINDOW_MINUTES
    have passed; its log of every failure (AXES_ENABLE_ACCESS_FAILURE_LOG) is kept a day for audit.
    """
    return AxesProxyHandler.reset_failure_logs(age_days=1)
