"""Login rate limiting for every login form (the console's and the admin's)."""

import datetime as dt
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_login_failed
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from users.models import LoginAttempt

# One account guessed from many addresses is stopped too, a little later.
PER_USERNAME_FACTOR = 4


def client_ip(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    if settings.TRUST_X_FORWARDED_FOR:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1].strip()
        if forwarded:
            return forwarded
    return request.META.get("REMOTE_ADDR")


def login_locked(*, username: str, ip: str | None) -> bool:
    since = timezone.now() - dt.timedelta(minutes=settings.LOGIN_ATTEMPTS_WINDOW_MINUTES)
    limit = settings.LOGIN_ATTEMPTS_LIMIT
    recent = LoginAttempt.objects.filter(at__gte=since)
    if ip and recent.filter(ip=ip).count() >= limit:
        return True
    return recent.filter(username=username).count() >= limit * PER_USERNAME_FACTOR


class RateLimitedModelBackend(ModelBackend):
    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if login_locked(username=username or "", ip=client_ip(request)):
            # PermissionDenied stops every backend: the right password does not help either.
            raise PermissionDenied("too many failed logins")
        return super().authenticate(request, username=username, password=password, **kwargs)


@receiver(user_login_failed)
def login_failure_record(
    sender: Any, credentials: dict, request: HttpRequest | None = None, **kw: Any
) -> None:
    LoginAttempt.objects.create(
        username=str(credentials.get("username", ""))[:150], ip=client_ip(request)
    )
