import hmac
import logging
from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from chatbridge.metrics import WEBHOOK_STAGE, timed
from rooms.desk.history import (
    conversation_read,
    conversations_search,
    customer_rooms,
    may_read_conversation,
)
from rooms.desk.selectors import is_agent, may_see_room, operations_summary
from rooms.desk.services import agent_file_send
from rooms.errors import ActionError
from rooms.events import message_data
from rooms.inbound.services import NotificationResult, notification_handle
from rooms.lines import ServedLines
from rooms.media.services import accepted_types
from rooms.models import Message, Room
from rooms.providers import provider_for
from rooms.providers.base import Provider
from rooms.whatsapp.client import MEDIA_LIMITS, mime_base
from rooms.whatsapp.webhook import Notification, WebhookError
from users.models import Customer

logger = logging.getLogger("chatbridge.webhook")

# The largest file WhatsApp carries (a document), and room for the form around it.
AGENT_UPLOAD_MAX_BYTES = max(MEDIA_LIMITS.values()) + 64 * 1024


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
        # Meta's business numbers: each signs with its app's secret, and is answered from itself.
        # The main number's POST needs no lookup; another number's reads the registry once.
        served = ServedLines() if provider.name == Customer.Provider.WHATSAPP else None
        try:
            try:
                notification, signed_with = _notification_read(
                    request, provider, [settings.WHATSAPP_APP_SECRET]
                )
            except WebhookError as error:
                others = served.other_secrets() if served and error.status == 401 else []
                if not others:
                    raise
                notification, signed_with = _notification_read(request, provider, others)
        except WebhookError as error:
            logger.info("%s webhook refused (%s): %s", provider.name, error.status, error.message)
            return JsonResponse({"error": error.message}, status=error.status)
        return notification_handle(notification=notification, lines=served, signed_with=signed_with)
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


def _notification_read(
    request: HttpRequest, provider: Provider, app_secrets: list[str]
) -> tuple[Notification, str]:
    """The provider's POST, verified and parsed, and the secret that signed it; WebhookError
    with the status to refuse it."""
    try:
        declared = int(request.headers.get("Content-Length") or 0)
    except ValueError as error:
        raise WebhookError(400, "invalid Content-Length") from error
    if declared > settings.WEBHOOK_MAX_BODY_BYTES:
        raise WebhookError(413, "body too large")
    try:
        with timed(WEBHOOK_STAGE, "verify"):
            signed_with = provider.verify(request, app_secrets=app_secrets)
            return provider.parse(request), signed_with
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


# Served inline (the console shows them: an <img>, a player); every other kept type is a download
# with its file name. Nothing is served as HTML or script, and the browser is told not to guess.
_INLINE_TYPES = {
    "image/jpeg",
    "image/png",
    "image/webp",
    "video/mp4",
    "video/3gpp",
    "audio/aac",
    "audio/amr",
    "audio/mpeg",
    "audio/mp4",
    "audio/ogg",
}


@login_required
@require_http_methods(["GET", "HEAD"])
def message_file(request: HttpRequest, message_id: int) -> FileResponse:
    """A message's file, to the people who may see its room: its assigned agent, and staff who
    may view messages. Anyone else gets the same 404 as for a file that does not exist."""
    message = (
        Message.objects.select_related("room")
        .filter(pk=message_id, media_status=Message.MediaStatus.STORED)
        .exclude(file="")
        .first()
    )
    if message is None or not (
        may_see_room(request.user, message.room)
        or may_read_conversation(request.user, message.room)  # a closed one, read-only
    ):
        raise Http404("no such file")
    mime_type = mime_base(message.mime_type)
    if mime_type not in accepted_types():
        mime_type = "application/octet-stream"  # no longer accepted: a download, nothing more
    inline = mime_type in _INLINE_TYPES
    response = FileResponse(
        message.file.open("rb"),
        content_type=mime_type,
        as_attachment=not inline,
        filename=message.file_name
        or f"chatbridge-{message.pk}{Path(message.file.name or '').suffix}",
    )
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _agent_or_refusal(request: HttpRequest) -> User | JsonResponse:
    """The agent making the request, or the refusal: 401 once the session ended (the console
    then goes to the login page), 403 for a user who is not an agent."""
    user = request.user
    if not user.is_authenticated:
        return JsonResponse(
            {"code": "signed_out", "error": _("Your session has ended: sign in again.")}, status=401
        )
    if not isinstance(user, User) or not is_agent(user):
        return JsonResponse(
            {"code": "not_an_agent", "error": _("This is for agents only.")},
            status=403,
        )
    return user


@require_http_methods(["POST"])
def agent_file_upload(request: HttpRequest, room_id: int) -> JsonResponse:
    """The composer's attachment (multipart `file`, optional `caption`), for the agent's own
    room; the console's session and CSRF token, like the admin's forms. Answers JSON only (a
    session that ended is 401, not the login page, so the console can say so)."""
    agent = _agent_or_refusal(request)
    if isinstance(agent, JsonResponse):
        return agent
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        refusal = _("The upload's Content-Length is not a number.")
        return JsonResponse({"code": "invalid", "error": refusal}, status=400)
    if length > AGENT_UPLOAD_MAX_BYTES:
        refusal = _("The file is too large: WhatsApp carries files of at most %(limit)s.") % {
            "limit": filesizeformat(max(MEDIA_LIMITS.values()))
        }
        return JsonResponse({"code": "invalid", "error": refusal}, status=413)
    upload = request.FILES.get("file")
    if upload is None:
        return JsonResponse({"code": "invalid", "error": _("No file was attached.")}, status=400)
    try:
        message = agent_file_send(
            room_id=room_id,
            agent=agent,
            upload=upload,
            caption=request.POST.get("caption", ""),
        )
    except ActionError as error:
        status = 403 if error.code == "not_your_room" else 400
        return JsonResponse({"code": error.code, "error": error.message}, status=status)
    return JsonResponse({"message": message_data(message)}, status=201)


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


# --- what an agent reads of the past (rooms/desk/history.py): JSON for the console -------------


@require_GET
def agent_customer_rooms(request: HttpRequest, room_id: int) -> JsonResponse:
    """The customer panel's earlier conversations of the customer of the agent's room."""
    agent = _agent_or_refusal(request)
    if isinstance(agent, JsonResponse):
        return agent
    return JsonResponse({"rooms": customer_rooms(room_id=room_id, agent_id=agent.pk)})


@require_GET
def agent_conversation(request: HttpRequest, room_id: int) -> JsonResponse:
    """A conversation to read: the same 404 for one that does not exist and one not to read."""
    agent = _agent_or_refusal(request)
    if isinstance(agent, JsonResponse):
        return agent
    room = Room.objects.select_related("customer", "agent").filter(pk=room_id).first()
    if room is None or not may_read_conversation(agent, room):
        return JsonResponse(
            {"code": "not_found", "error": _("There is no such conversation for you to read.")},
            status=404,
        )
    return JsonResponse(conversation_read(room))


@require_GET
def agent_search(request: HttpRequest) -> JsonResponse:
    """`?q=`: closed conversations by number, name or words of their messages."""
    agent = _agent_or_refusal(request)
    if isinstance(agent, JsonResponse):
        return agent
    try:
        results = conversations_search(user=agent, text=request.GET.get("q", ""))
    except ActionError as error:
        return JsonResponse({"code": error.code, "error": error.message}, status=400)
    return JsonResponse({"results": results})
