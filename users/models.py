import uuid

from django.conf import settings
from django.db import models


class Customer(models.Model):
    """Someone who writes to the business on WhatsApp. Agents are Django auth users."""

    class Provider(models.TextChoices):
        WHATSAPP = "whatsapp", "WhatsApp"
        TWILIO = "twilio", "WhatsApp through Twilio"

    provider = models.CharField(max_length=20, choices=Provider.choices, default=Provider.WHATSAPP)
    # The id chatbridge knows the customer by: the WhatsApp id (phone digits), or Meta's
    # business-scoped user id when WhatsApp withholds the phone number (usernames, 2026).
    uid = models.CharField("WhatsApp id", max_length=140)
    wa_id = models.CharField("phone (wa_id)", max_length=32, blank=True)
    user_id = models.CharField("business-scoped user id", max_length=140, blank=True)
    # The name agents see: the WhatsApp profile's, until an operator edits it (`name_edited`);
    # then the operator's, whatever the profile says later.
    name = models.CharField(max_length=255, blank=True)
    name_edited = models.BooleanField(
        "name kept as edited",
        default=False,
        help_text="Set when an operator edits the name; clear it to follow WhatsApp's again",
    )
    # What the customer's WhatsApp profile says, as of their last message.
    profile_name = models.CharField("WhatsApp profile name", max_length=255, blank=True)
    # What operators want every agent to know about this customer (the room's customer panel).
    notes = models.TextField(
        "operators' notes",
        blank=True,
        help_text="Shown to agents in the customer panel of the customer's rooms",
    )
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


class AgentProfile(models.Model):
    """A human agent's capacity and presence. Agents are Django users in the `agents` group."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_profile"
    )
    # RN-028 of the original system: at most 5 rooms at once, editable per agent.
    capacity = models.PositiveSmallIntegerField(default=5)
    # The agent's own switch: off means "do not send me rooms" even while connected.
    available = models.BooleanField(default=True)
    # Refreshed by every open console; an agent whose consoles all closed or went silent for
    # PRESENCE_TIMEOUT_SECONDS is offline.
    last_seen_at = models.DateTimeField(null=True, blank=True)
    # Ties in load go to whoever waited longest for a room.
    last_assigned_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"agent {self.user}"


class AgentPresence(models.Model):
    """A stretch of time an agent was online (a console of theirs connected and beating), with
    their switch on (available) or off, within one business day (BUSINESS_TIMEZONE): a stretch
    that reaches midnight is ended there and the next one begins, so a day's online time is the
    sum of its stretches. Written by users.services.agent_presence_* (a console's connect,
    heartbeat and disconnect; the availability switch); read by the reports."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="presences"
    )
    available = models.BooleanField()
    started_at = models.DateTimeField()
    # The last moment the agent was known to be there (a heartbeat, or the end): a console that
    # vanished without closing ends its stretch at its last heartbeat.
    seen_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "agent presences"
        # Who may open the admin's reports besides superusers and staff supervisors (README,
        # *Reports*): kept here, with the agents' figures the reports read.
        permissions = [("view_reports", "Can see the reports")]
        constraints = [
            # The stretch a heartbeat extends: one per agent, however many consoles they have.
            models.UniqueConstraint(
                fields=["user"], condition=models.Q(ended_at__isnull=True), name="presence_one_open"
            ),
        ]
        indexes = [models.Index(fields=["started_at"], name="presence_started")]

    def __str__(self) -> str:
        return f"{self.user} online from {self.started_at:%Y-%m-%d %H:%M}"
