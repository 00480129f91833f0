"""What chatbridge needs of a WhatsApp provider: Meta's Cloud API, or a BSP such as Twilio.

Message bodies travel in Meta's shape (rooms/whatsapp/client.py builds them, Message.payload keeps
them), so the stages above never ask which provider a customer writes through; a provider that
speaks another format translates a body in `send`, and refuses one it cannot express.
"""

from collections.abc import Sequence
from typing import Any, Protocol

from django.http import HttpRequest

from rooms.whatsapp.client import FetchedMedia, Sender
from rooms.whatsapp.webhook import Notification

__all__ = ["FetchedMedia", "Provider", "Sender"]


class Provider(Protocol):
    """One provider's webhook and client behind the same five calls."""

    name: str  # its users.Customer.Provider value

    def verify(self, request: HttpRequest, *, app_secrets: Sequence[str] = ()) -> str:
        """The secret that signed this request (of `app_secrets`, the business numbers' own,
        where the provider has several); WebhookError, carrying the HTTP status to answer,
        unless the provider signed it."""

    def parse(self, request: HttpRequest) -> Notification:
        """Every item of a verified request; an item chatbridge cannot use is a SkippedItem.
        WebhookError(400) only when the request as a whole is not the provider's."""

    def send(
        self,
        *,
        to: str,
        recipient_user_id: str,
        body: dict[str, Any],
        reference: str,
        sender: Sender | None = None,
    ) -> str:
        """Send one message from `sender` (None: the main business number); returns the
        provider's message id. Raises VendorTimeout or VendorConnectionLost when it may have
        been sent anyway, another VendorError (with the
        provider's code where it gave one) when it was not. `reference` comes back in the
        message's statuses (StatusUpdate.reference)."""

    def mark_read(
        self, provider_message_id: str, *, typing: bool, sender: Sender | None = None
    ) -> bool:
        """Show the customer their message read (and "typing…"); never raises. False when
        nothing was marked."""

    def media_fetch(
        self, ref: str, *, max_bytes: int, sender: Sender | None = None
    ) -> FetchedMedia:
        """A customer's file, by the `ref` its webhook gave (rooms.whatsapp.webhook.MediaRef).
        Raises MediaTooLarge past `max_bytes`, another VendorError (with the provider's code,
        or the HTTP status) when it could not be fetched."""
