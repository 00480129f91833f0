import hmac
import logging

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from chatbridge.metrics import WEBHOOK_STAGE, timed
from rooms.desk.selectors import is_agent, operations_summary
from rooms.inbound.services import NotificationResult, notification_handle
from rooms.providers import provider_for
from rooms.providers.base import Provider
from rooms.whatsapp.webhook import Notification, WebhookError
from users.models import Customer

logger = logging.getLogger("chatbridge.webhook")


@csrf_exempt  # Meta signs the body instead; the signature is checked before anything else
@require_http_methods(["GET", "POST"])
def whatsapp_webhook(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _verification_handshake(request)
    received = _notification_receive(request, provider_for(Customer.Provider.WHATSAPP))
    if isinstance(received, HttpResponse):
        return received
    # 200 even with skipped items: they are kept (rooms.UnusableItem), and a refusal would only
    # make Meta redeliver the whole batch, the good messages with them, for days.
    return JsonResponse(
        {
            "stored": received.stored,
            "duplicates": received.duplicates,
            "statuses": received.statuses,
            "skipped": received.skipped,
        }
    )


# Twilio reads the answer as TwiML: an empty one sends nothing back by itself.
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


@csrf_exempt  # Twilio signs the URL and the form instead (X-Twilio-Signature)
@require_POST
def twilio_webhook(request: HttpRequest) -> HttpResponse:
    """A customer's message (twilio/whatsapp) or a send's status callback (twilio/status)."""
    received = _notification_receive(request, provider_for(Customer.Provider.TWILIO))
    if isinstance(received, HttpResponse):
        return received
    return HttpResponse(EMPTY_TWIML, content_type="text/xml")


def _notification_receive(
    request: HttpRequest, provider: Provider
) -> NotificationResult | HttpResponse:
    """Verify, parse and store one provider's POST; the refusal to answer with, if any."""
    try:
        notification = _notification_read(request, provider)
    except WebhookError as error:
        logger.info("%s webhook refused (%s): %s", provider.name, error.status, error.message)
        return JsonResponse({"error": error.message}, status=error.status)
    try:
        return notification_handle(notification=notification)
    except (OperationalError, InterfaceError) as error:
        # PostgreSQL unreachable: refuse, so the provider delivers again later. What was
        # committed before the failure is recognised as a duplicate on redelivery.
        logger.error("database unavailable, webhook refused: %s", error)
        return JsonResponse(
            {"error": "temporarily unavailable"}, status=503, headers={"Retry-After": "30"}
        )
    except DatabaseError:
        logger.exception("webhook failed")
        return JsonResponse({"error": "temporarily unavailable"}, status=503)


def _notification_read(request: HttpRequest, provider: Provider) -> Notification:
    """The provider's POST, verified and parsed; WebhookError with the status to refuse it."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError as error:
        raise WebhookError(400, "invalid Content-Length") from error
    if declared > settings.WEBHOOK_MAX_BODY_BYTES:
        raise WebhookError(413, "body too large")
    try:
        with timed(WEBHOOK_STAGE, "verify"):
            provider.verify(request)
            return provider.parse(request)
    except RequestDataTooBig as error:
        raise WebhookError(413, "body too large") from error


def _verification_handshake(request: HttpRequest) -> HttpResponse:
    mode = request.GET.get("hub.mode")
    token = request.GET.get("hub.verify_token", "")
    challenge = request.GET.get("hub.challenge", "")
    if (
        mode == "subscribe"
        and challenge
        and hmac.compare_digest(token.encode(), settings.WHATSAPP_VERIFY_TOKEN.encode())
    ):
        return HttpResponse(challenge, content_type="text/plain")
    return HttpResponse("verification failed", status=403, content_type="text/plain")


@login_required
def agent_console(request: HttpRequest) -> HttpResponse:
    if not is_agent(request.user):
        raise PermissionDenied("only agents use the console")
    return render(request, "rooms/agent_console.html")


@staff_member_required
def operations_view(request: HttpRequest) -> HttpResponse:
    """The operators' page in the admin: what chatbridge is doing now."""
    context = {**admin.site.each_context(request), "title": "Operations", **operations_summary()}
    return render(request, "admin/operations.html", context)
