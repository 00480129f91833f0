"""Meta's Cloud API as a provider: rooms/whatsapp/ does the work, unchanged. Each business
number sends with its own id and token (`sender`: the main number's from the settings when
None), and a webhook is verified against the app secrets of every number served."""

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.http import HttpRequest

from rooms.whatsapp.client import FetchedMedia, Sender, whatsapp_client
from rooms.whatsapp.webhook import InboundWebhook, Notification


class MetaProvider:
    name = "whatsapp"

    def verify(self, request: HttpRequest, *, app_secrets: Sequence[str] = ()) -> str:
        return _webhook(request, app_secrets).validate()

    def parse(self, request: HttpRequest) -> Notification:
        return _webhook(request, ()).parse()

    def send(
        self,
        *,
        to: str,
        recipient_user_id: str,
        body: dict[str, Any],
        reference: str,
        sender: Sender | None = None,
    ) -> str:
        return whatsapp_client(sender).send(
            to=to, recipient_user_id=recipient_user_id, body=body, reference=reference
        )

    def mark_read(
        self, provider_message_id: str, *, typing: bool, sender: Sender | None = None
    ) -> bool:
        return whatsapp_client(sender).mark_read(provider_message_id, typing=typing)

    def media_fetch(
        self, ref: str, *, max_bytes: int, sender: Sender | None = None
    ) -> FetchedMedia:
        return whatsapp_client(sender).media_fetch(
            ref, max_bytes=max_bytes, timeout=settings.MEDIA_FETCH_TIMEOUT
        )


def _webhook(request: HttpRequest, app_secrets: Sequence[str]) -> InboundWebhook:
    return InboundWebhook(
        body=request.body,
        signature=request.headers.get("X-Hub-Signature-256"),
        app_secrets=list(app_secrets) or [settings.WHATSAPP_APP_SECRET],
    )
