import datetime as dt
import zoneinfo

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Subquery, Value
from django.db.models.functions import Greatest

from chatbridge.cache import (
    CUSTOMER_TTL,
    cache_set,
    customer_cache_key,
    flush_active_room,
    flush_customer,
)
from users.models import AgentPresence, AgentProfile, Customer
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


# --- agents' presence: stretches of online time, for the reports -------------------------------
#
# A console calls agent_presence_seen when it connects and at every heartbeat, and
# agent_presence_end when it closes; the availability switch calls agent_presence_switch. An
# agent has at most one open stretch however many consoles they have: the first console's
# heartbeat extends it (one UPDATE, the common case), a closing console ends it (as it sets the
# profile's last_seen_at to none: the desk counts them offline too until another console beats).


def agent_presence_seen(*, user_id: int, now: dt.datetime) -> None:
    """The agent is online now: their open stretch is extended, or a new one starts (after a
    silence longer than PRESENCE_TIMEOUT_SECONDS, at midnight, or when the switch changed in a
    way agent_presence_switch did not see, such as the admin's list)."""
    fresh = now - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    switch = AgentProfile.objects.filter(user_id=user_id).values("available")[:1]
    extended = AgentPresence.objects.filter(
        user_id=user_id,
        ended_at=None,
        seen_at__gte=fresh,
        started_at__gte=_day_start(now),
        available=Subquery(switch),
    ).update(seen_at=Greatest(F("seen_at"), Value(now)))  # two consoles' beats cross: the latest
    if extended:
        return
    with transaction.atomic():
        # The profile's lock keeps two consoles from opening two stretches at once.
        profile = AgentProfile.objects.select_for_update().filter(user_id=user_id).first()
        if profile is None:
            return
        current = _presence_open(user_id)
        if current is not None and current.seen_at >= fresh:
            current = _presence_carry(current, now)
            if current.available == profile.available:
                return
            _presence_close(current, now)
        elif current is not None:
            _presence_close(current, current.seen_at)  # its console vanished: gone since then
        AgentPresence.objects.create(
            user_id=user_id, available=profile.available, started_at=now, seen_at=now
        )


def agent_presence_end(*, user_id: int, now: dt.datetime) -> None:
    """A console closed: the agent's open stretch ends now (at its last heartbeat if that was
    longer ago than PRESENCE_TIMEOUT_SECONDS)."""
    with transaction.atomic():
        current = _presence_open(user_id)
        if current is None:
            return
        fresh = now - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
        if current.seen_at >= fresh:
            current = _presence_carry(current, now)
        _presence_close(current, current.seen_at)  # a silent one: gone since its last beat


def agent_presence_switch(*, user_id: int, available: bool, now: dt.datetime) -> None:
    """The agent's switch changed (inside the caller's transaction, after the profile's write):
    an online agent's stretch ends and one with the new value begins."""
    current = _presence_open(user_id)
    fresh = now - dt.timedelta(seconds=settings.PRESENCE_TIMEOUT_SECONDS)
    if current is None or current.available == available or current.seen_at < fresh:
        return  # offline: their next heartbeat starts a stretch with the switch as it is then
    current = _presence_carry(current, now)
    _presence_close(current, current.seen_at)
    AgentPresence.objects.create(
        user_id=user_id, available=available, started_at=current.seen_at, seen_at=current.seen_at
    )


def _presence_open(user_id: int) -> AgentPresence | None:
    return AgentPresence.objects.select_for_update().filter(user_id=user_id, ended_at=None).first()


def _presence_carry(current: AgentPresence, now: dt.datetime) -> AgentPresence:
    """An open stretch carried on to `now`: ended at each midnight it passes (a day's online
    time is then its own stretches' sum), the last one open and seen now."""
    midnight = _day_start(current.started_at) + dt.timedelta(days=1)
    while midnight <= now:
        _presence_close(current, midnight)
        current = AgentPresence.objects.create(
            user_id=current.user_id,
            available=current.available,
            started_at=midnight,
            seen_at=midnight,
        )
        midnight += dt.timedelta(days=1)  # wall-clock: the next midnight, whatever the DST
    current.seen_at = max(current.seen_at, now)
    current.save(update_fields=["seen_at"])
    return current


def _presence_close(current: AgentPresence, at: dt.datetime) -> None:
    current.seen_at = current.ended_at = at
    current.save(update_fields=["seen_at", "ended_at"])


def _day_start(moment: dt.datetime) -> dt.datetime:
    """Midnight of `moment`'s day where the bank works (BUSINESS_TIMEZONE)."""
    zone = zoneinfo.ZoneInfo(settings.BUSINESS_TIMEZONE)
    local = moment.astimezone(zone)
    return dt.datetime.combine(local.date(), dt.time(), tzinfo=zone)
