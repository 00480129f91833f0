"""What django-axes asks of chatbridge for the login lockout: the client's address and the page a
locked-out person sees. axes itself counts the failures (settings: AXES_*)."""

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def client_ip(request: HttpRequest) -> str | None:
    """AXES_CLIENT_IP_CALLABLE (axes passes the request positionally)."""
    if settings.TRUST_X_FORWARDED_FOR:
        # deploy/nginx.conf overwrites the header with the address it saw, so only the last
        # entry is the proxy's word; anything before it the client could have written. What is
        # not an address (no proxy of ours wrote it) counts as absent.
        forwarded = _address(request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")[-1])
        if forwarded:
            return forwarded
    return _address(request.META.get("REMOTE_ADDR", ""))


def _address(value: str) -> str | None:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def login_lockout_response(
    request: HttpRequest, original_response: Any = None, credentials: Any = None
) -> HttpResponse:
    """AXES_LOCKOUT_CALLABLE: the login form again, saying why and for how long.

    Neither argument is read: axes' ASGI path passes the credentials where the response goes."""
    minutes = settings.AXES_COOLOFF_TIME.total_seconds() / 60
    context = {
        "locked_out_minutes": minutes,
        "next": request.POST.get("next") or request.GET.get("next", ""),
    }
    # 200, as for any refused login: the person reads the page, not the status.
    return render(request, "registration/login.html", context)
