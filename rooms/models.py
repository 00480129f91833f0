from django.conf import settings
from django.db import models
from django.db.models import Q

from users.models import Customer


class Room(models.Model):
    """One conversation with a customer, from their first message until it is closed."""

    class Status(models.TextChoices):
        BOT = "bot", "With the bot"
        QUEUED = "queued", "Waiting for an agent"
        ASSIGNED = "assigned", "With an agent"
        CLOSED = "closed", "Closed"

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="rooms")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOT)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rooms",
    )
    # What the assistant told the human agent when it handed the room off.
    handoff_note = models.TextField(blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    closed_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            # The original system's duplicated rooms: the database decides, not a lookup.
            models.UniqueConstraint(
                fields=["customer"],
                condition=~Q(status="closed"),
                name="room_one_open_per_customer",
            ),
        ]
        indexes = [models.Index(fields=["status", "queued_at"], name="room_status_queued")]

    def __str__(self) -> str:
        return f"room {self.pk} ({self.status})"

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.CLOSED


class Message(models.Model):
    class Direction(models.TextChoices):
        INBOUND = "in", "From the customer"
        OUTBOUND = "out", "To the customer"

    class Author(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        BOT = "bot", "Bot"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    class Type(models.TextChoices):
        TEXT = "text", "Text"
        INTERACTIVE = "interactive", "Interactive reply"
        IMAGE = "image", "Image"
        AUDIO = "audio", "Audio"
        VIDEO = "video", "Video"
        DOCUMENT = "document", "Document"
        STICKER = "sticker", "Sticker"
        LOCATION = "location", "Location"
        REACTION = "reaction", "Reaction"
        UNSUPPORTED = "unsupported", "Unsupported"

    class Status(models.TextChoices):
        # Outbound delivery, in the only order it may move; failed can follow any of them.
        PENDING = "pending", "Not sent yet"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        FAILED = "failed", "Failed"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    direction = models.CharField(max_length=3, choices=Direction.choices)
    author = models.CharField(max_length=10, choices=Author.choices)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    type = models.CharField(max_length=12, choices=Type.choices, default=Type.TEXT)
    text = models.TextField(blank=True)
    # Inbound: the message object exactly as Meta sent it. Outbound: the body we posted.
    payload = models.JSONField(default=dict, blank=True)
    # Meta's id: the idempotency key of inbound messages, the status key of outbound ones.
    wa_message_id = models.CharField(max_length=255, unique=True, null=True, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, blank=True)
    error_code = models.IntegerField(null=True, blank=True)
    error_detail = models.TextField(blank=True)
    # When the customer's WhatsApp says the message was written (inbound) or last changed status.
    wa_timestamp = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Inbound messages for the bot: set once their turn is done (answered, or handed to agents).
    # A message still unset after TURN_RESUME_AFTER_SECONDS is taken up again.
    handled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["room", "id"], name="message_room_id"),
            models.Index(
                fields=["created_at"],
                condition=Q(direction="in", handled_at__isnull=True),
                name="message_unhandled",
            ),
            models.Index(
                fields=["created_at"],
                condition=Q(direction="out", status="pending"),
                name="message_unsent",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.type} {self.pk}"
