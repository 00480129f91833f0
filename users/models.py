import uuid

from django.db import models


class Customer(models.Model):
    """Someone who writes to the business on WhatsApp. Agents are Django auth users."""

    class Provider(models.TextChoices):
        WHATSAPP = "whatsapp", "WhatsApp"

    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.WHATSAPP)
    # The id chatbridge knows the customer by: the WhatsApp id (phone digits), or Meta's
    # business-scoped user id when WhatsApp withholds the phone number (usernames, 2026).
    uid = models.CharField("WhatsApp id", max_length=140)
    wa_id = models.CharField("phone (wa_id)", max_length=32, blank=True)
    user_id = models.CharField("business-scoped user id", max_length=140, blank=True)
    name = models.CharField(max_length=255, blank=True)
    # Sent to Watson as user_id: stable per customer (one billable user) and not a phone number.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "uid"], name="customer_unique_provider_uid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name or 'customer'} ({self.masked_uid})"

    @property
    def masked_uid(self) -> str:
        return mask_uid(self.uid)


def mask_uid(uid: str) -> str:
    """Phone numbers never reach the logs whole: keep the last four characters."""
    return f"…{uid[-4:]}" if len(uid) > 4 else "…"
