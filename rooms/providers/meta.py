"""Meta's Cloud API as a provider: rooms/whatsapp/ does the work, unchanged."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from rooms.whatsapp.client import FetchedMedia, whatsapp_client
from rooms.whatsapp.webhook import InboundWebhook, Notification


class MetaProvider:
    name = "whatsapp"

    def verify(self, request: HttpRequest) -> None:
        _webhook(request).validate()

    def parse(self, request: HttpRequest) -> Notification:
        return _webhook(request).parse()

    def send(self, *, to: str, recipient_user_id: str, body: dict[str, Any], reference: str) -> str:
        return whatsapp_client().send(
            to=to, recipient_user_id=recipient_user_id, body=body, reference=reference
        )

    def mark_read(self, provider_message_id: str, *, typing: bool) -> bool:
        return whatsapp_client().mark_read(provider_message_id, typing=typing)

    def media_fetch(self, ref: str, *, max_bytes: int) -> FetchedMedia:
        return whatsapp_client().media_fetch(
            ref, max_bytes=max_bytes, timeout=settings.MEDIA_FETCH_TIMEOUT
        )


def _webhook(request: HttpRequest) -> InboundWebhook:
    return InboundWebhook(
        body=request.body,
        signature=request.headers.get("X-Hub-Signature-256"),
        app_secret=settings.WHATSAPP_APP_SECRET,
    )
