import re

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from users.models import Customer

# An environment variable's name, as a WhatsAppNumber names its token's and secret's.
ENV_NAME = RegexValidator(r"^[A-Z_][A-Z0-9_]{0,99}$", "An environment variable: A-Z, 0-9 and _.")


class Area(models.Model):
    """A team of agents with a queue of its own (the original's "Level 1" and "Level 2"). A room
    enters the area Watson names at the hand-off (transfer_info.target.chatbridge.area: the
    area's code or name), otherwise the default one; an agent receives rooms only from their
    areas (an agent in none works the default area)."""

    name = models.CharField(max_length=100, unique=True)
    code = models.SlugField(
        max_length=50, unique=True, help_text="What Watson names at the hand-off, e.g. level-2"
    )
    is_default = models.BooleanField(
        "default area", default=False, help_text="Where a hand-off that names no area goes"
    )
    agents = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="areas", blank=True, help_text="Who works it"
    )
    position = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["position", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=Q(is_default=True), name="area_one_default"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class WhatsAppNumber(models.Model):
    """A WhatsApp number the business answers on besides (or as well as) the main one in
    WHATSAPP_PHONE_NUMBER_ID: a line of its own (cards, mortgages, employees), with its default
    area and Watson assistant. Its access token and app secret are read from the environment
    variables it names: never stored here."""

    phone_number_id = models.CharField(
        "phone number ID",
        max_length=64,
        unique=True,
        validators=[RegexValidator(r"^[0-9]{1,64}$", "Meta's phone number ID: digits only.")],
        help_text="As in Meta's WhatsApp Manager (API Setup), e.g. 106540352242922",
    )
    name = models.CharField(max_length=100, unique=True, help_text="What agents see, e.g. Tarjetas")
    display_number = models.CharField(max_length=32, blank=True, help_text="e.g. +57 601 555 0100")
    token_env = models.CharField(
        "access token variable",
        max_length=100,
        validators=[ENV_NAME],
        help_text="The environment variable holding this number's access token",
    )
    app_secret_env = models.CharField(
        "app secret variable",
        max_length=100,
        validators=[ENV_NAME],
        help_text="The environment variable holding the app secret that signs its webhooks",
    )
    area = models.ForeignKey(
        "Area",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Where its hand-offs go when Watson names no area (empty: the default area)",
    )
    watson_assistant_id = models.CharField(
        max_length=100, blank=True, help_text="Empty: WATSON_ASSISTANT_ID"
    )
    watson_environment_id = models.CharField(
        max_length=100, blank=True, help_text="Empty: WATSON_ENVIRONMENT_ID"
    )
    active = models.BooleanField(
        default=True, help_text="Off: its messages are kept and flagged, never answered"
    )

    class Meta:
        ordering = ["name"]
        verbose_name = "WhatsApp number"

    def __str__(self) -> str:
        return self.name


class ClosureReason(models.Model):
    """Why an agent closed a room; operators edit the list in the admin. Global, or offered only
    in the rooms of one area."""

    title = models.CharField(max_length=100, unique=True)
    active = models.BooleanField(default=True)
    position = models.PositiveSmallIntegerField(default=0)
    area = models.ForeignKey(
        Area,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: offered in every area",
    )

    class Meta:
        ordering = ["position", "title"]

    def __str__(self) -> str:
        return self.title


class CannedReply(models.Model):
    """A ready answer agents pick in the composer with `/` (the original system's protocol
    messages). Its text may name {customer_first_name}, {customer_name} and
    {agent_first_name}: filled in the composer, where the agent reads and may change it."""

    title = models.CharField(max_length=100)
    shortcut = models.SlugField(max_length=30, unique=True, help_text="Typed after / to find it")
    text = models.TextField(
        max_length=4096,
        help_text="May use {customer_first_name}, {customer_name}, {agent_first_name}",
    )
    position = models.PositiveSmallIntegerField(default=0)
    active = models.BooleanField(default=True)
    area = models.ForeignKey(
        Area,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="Empty: offered in every area",
    )

    class Meta:
        ordering = ["position", "title"]
        verbose_name_plural = "canned replies"

    def __str__(self) -> str:
        return f"/{self.shortcut} {self.title}"

    def clean(self) -> None:
        unknown = set(CANNED_FILL.findall(self.text)) - set(MessageTemplate.Fill.values)
        if unknown:
            raise ValidationError(
                {"text": f"Not a placeholder chatbridge fills: {sorted(unknown)}"}
            )


# A canned reply's placeholder: {customer_first_name}
CANNED_FILL = re.compile(r"\{([a-z_]+)\}")


class MessageTemplate(models.Model):
    """A template Meta approved for this number: the only message WhatsApp carries once the
    customer's 24-hour window has closed. Operators keep them here as approved in Meta's
    WhatsApp Manager; Meta's status updates (approved, paused, rejected...) land here too."""

    class Fill(models.TextChoices):
        CUSTOMER_FIRST_NAME = "customer_first_name", "The customer's first name"
        CUSTOMER_NAME = "customer_name", "The customer's full name"
        AGENT_FIRST_NAME = "agent_first_name", "The agent's first name"

    name = models.CharField(max_length=512, help_text="As in WhatsApp Manager, e.g. follow_up")
    language = models.CharField(max_length=15, help_text="Its language code, e.g. es or es_CO")
    header = models.CharField(
        max_length=60, blank=True, help_text="The template's text header, if it has one"
    )
    body = models.TextField(help_text="The body as approved, with {{1}}, {{2}}… for its parameters")
    # What fills {{1}}, {{2}}…, in order: one of Fill's values each.
    parameters = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "What fills {{1}}, {{2}}… in order, e.g. "
            '["customer_first_name", "agent_first_name"]; each one of: '
            "customer_first_name, customer_name, agent_first_name"
        ),
    )
    active = models.BooleanField(default=True, help_text="Offered to agents")
    # Meta's word on it, from the message_template_status_update webhook.
    status = models.CharField(max_length=30, default="APPROVED")
    status_reason = models.CharField(max_length=200, blank=True)
    status_updated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "language"]
        constraints = [
            models.UniqueConstraint(fields=["name", "language"], name="template_name_language"),
        ]

    # Meta's events after which the template can be sent: approved, back from a pause
    # (REINSTATED), or flagged for quality (sendable until Meta pauses it).
    SENDABLE = frozenset({"APPROVED", "REINSTATED", "FLAGGED"})

    def __str__(self) -> str:
        return f"{self.name} ({self.language})"

    @classmethod
    def fills(cls, *, customer_name: str, agent_first_name: str) -> dict[str, str]:
        """What each Fill stands for in one conversation. WhatsApp refuses an empty parameter:
        a customer without a profile name is "cliente"."""
        name = " ".join(customer_name.split()) or "cliente"
        return {
            cls.Fill.CUSTOMER_FIRST_NAME: name.split(" ", 1)[0],
            cls.Fill.CUSTOMER_NAME: name,
            cls.Fill.AGENT_FIRST_NAME: agent_first_name.strip() or "tu asesor",
        }

    def values(self, fills: dict[str, str]) -> list[str]:
        """The body's parameters, in order."""
        return [fills[fill] for fill in self.parameters]

    def text(self, fills: dict[str, str]) -> str:
        """What the customer reads: the header, then the body with its parameters filled."""
        values = self.values(fills)
        body = PLACEHOLDER.sub(lambda match: values[int(match[1]) - 1], self.body)
        return f"{self.header}\n{body}" if self.header else body

    def clean(self) -> None:
        numbers = sorted({int(number) for number in PLACEHOLDER.findall(self.body)})
        if numbers != list(range(1, len(numbers) + 1)):
            raise ValidationError({"body": "Number the parameters {{1}}, {{2}}… without gaps."})
        if not isinstance(self.parameters, list) or len(self.parameters) != len(numbers):
            raise ValidationError(
                {"parameters": f"One fill for each of the body's {len(numbers)} parameters."}
            )
        unknown = [fill for fill in self.parameters if fill not in self.Fill.values]
        if unknown:
            raise ValidationError({"parameters": f"Not a fill chatbridge knows: {unknown}"})


# A template body's parameter, as Meta writes them: {{1}}, {{2}}…
PLACEHOLDER = re.compile(r"\{\{(\d+)\}\}")


class Room(models.Model):
    """One conversation with a customer, from their first message until it is closed."""

    class Status(models.TextChoices):
        BOT = "bot", "With the bot"
        QUEUED = "queued", "Waiting for an agent"
        ASSIGNED = "assigned", "With an agent"
        CLOSED = "closed", "Closed"

    # The statuses in which a room is the agents' (its events and ticks reach their consoles).
    WITH_AGENTS = frozenset({Status.QUEUED, Status.ASSIGNED})

    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="rooms")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.BOT)
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="rooms",
    )
    # The team whose queue it waits in, or whose agent has it (set at the hand-off).
    area = models.ForeignKey(
        Area, on_delete=models.PROTECT, null=True, blank=True, related_name="rooms"
    )
    # The business number the customer wrote to (its phone_number_id; "" for the main one,
    # WHATSAPP_PHONE_NUMBER_ID, and for Twilio): replies go out from it.
    # (Its database default too: rows written by older processes during an upgrade, or by COPY.)
    line = models.CharField(max_length=64, blank=True, default="", db_default="")
    # What the assistant told the human agent when it handed the room off.
    handoff_note = models.TextField(blank=True)
    opened_at = models.DateTimeField(auto_now_add=True)
    queued_at = models.DateTimeField(null=True, blank=True)
    assigned_at = models.DateTimeField(null=True, blank=True)
    # The room's first hand-off and first assignment (queued_at and assigned_at as they were
    # the first time) and its first agent message, each written by the UPDATE that records it
    # and never moved after: the reports read them with the period's rooms, rather than
    # aggregating its events and messages (rooms/reports/statements.py).
    first_queued_at = models.DateTimeField(null=True, blank=True)
    first_assigned_at = models.DateTimeField(null=True, blank=True)
    first_answered_at = models.DateTimeField(null=True, blank=True)
    # Any message in or out; and the customer's last message (the 24-hour window starts there).
    last_activity_at = models.DateTimeField(auto_now_add=True)
    last_customer_at = models.DateTimeField(null=True, blank=True)
    # The sequence number of the room's last event (RoomEvent.seq): agents replay from it.
    event_seq = models.PositiveBigIntegerField(default=0)
    closed_at = models.DateTimeField(null=True, blank=True)
    closed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    closed_reason = models.CharField(max_length=200, blank=True)
    closure_reason = models.ForeignKey(
        ClosureReason, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Watson's connect_to_agent `transfer_info` at the hand-off, as it came (areas read it).
    transfer_info = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [
            # The original system's duplicated rooms: the database decides, not a lookup.
            models.UniqueConstraint(
                fields=["customer", "line"],
                condition=~Q(status="closed"),
                name="room_one_open_per_customer_line",
            ),
        ]
        indexes = [
            models.Index(fields=["status", "queued_at"], name="room_status_queued"),
            models.Index(fields=["agent", "status"], name="room_agent_status"),
            # The reports' period (rooms/reports/statements.py).
            models.Index(fields=["opened_at"], name="room_opened"),
        ]
        # Closing ends the customer's conversation: its own right, apart from viewing or editing.
        permissions = [("close_room", "Can close rooms")]

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
        CONTACTS = "contacts", "Shared contacts"
        TEMPLATE = "template", "Template"
        REACTION = "reaction", "Reaction"
        # A WhatsApp notice the customer did not write (a number or identity change).
        SYSTEM = "system", "WhatsApp notice"
        UNSUPPORTED = "unsupported", "Unsupported"

    class Status(models.TextChoices):
        # Outbound delivery, in the only order it may move; failed can follow any of them.
        PENDING = "pending", "Not sent yet"
        # Someone holds the send until `send_lease_until` (rooms/delivery/services.py).
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        READ = "read", "Read"
        FAILED = "failed", "Failed"

    class MediaStatus(models.TextChoices):
        PENDING = "pending", "Not fetched yet"
        STORED = "stored", "Stored"
        FAILED = "failed", "Could not be fetched"

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
    # Outbound: while `sending`, the send belongs to whoever set this; after it (and the grace for
    # WhatsApp's status to arrive) recovery may take it up. `send_attempts` counts the sends.
    send_lease_until = models.DateTimeField(null=True, blank=True)
    send_attempts = models.PositiveSmallIntegerField(default=0)
    # Inbound: how many times `turns_resume` took its turn up again (TURN_RESUME_MAX, then agents).
    resumes = models.PositiveSmallIntegerField(default=0)
    # A bot's options message: the value each numbered option sends back to Watson.
    options = models.JSONField(default=list, blank=True)
    # A file, either way. Inbound: what the provider declared (its media id, or URL; the type,
    # name and SHA-256), then the file once a task fetched it (rooms/media/). Outbound: the file
    # the agent attached, and the media id WhatsApp gave it on upload.
    media_id = models.CharField(max_length=1000, blank=True)
    mime_type = models.CharField(max_length=255, blank=True)
    file_name = models.CharField(max_length=255, blank=True)
    media_sha256 = models.CharField(max_length=100, blank=True)
    media_size = models.PositiveBigIntegerField(null=True, blank=True)
    # Stored through Django's storage API under an unguessable name; people reach it only
    # through rooms.views.message_file, which checks that they may see the room.
    file = models.FileField(max_length=300, blank=True)
    media_status = models.CharField(max_length=10, choices=MediaStatus.choices, blank=True)
    media_error = models.CharField(max_length=300, blank=True)
    media_attempts = models.PositiveSmallIntegerField(default=0)
    # A customer's reply that quotes an earlier message: that message, as it was then.
    quoted = models.JSONField(default=dict, blank=True)
    # The customer edited or deleted (revoked) this message in WhatsApp after sending it.
    edited_at = models.DateTimeField(null=True, blank=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

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
                condition=Q(direction="out", status__in=["pending", "sending"]),
                name="message_unsent",
            ),
            models.Index(
                fields=["updated_at"],
                condition=Q(media_status="pending"),
                name="message_media_pending",
            ),
            # Agents' messages by time, with their room: a supervisor's overview reads the
            # agents' last replies of the day through it (rooms/desk/selectors.py).
            models.Index(
                fields=["created_at", "room"], condition=Q(author="agent"), name="message_agent"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_direction_display()} {self.type} {self.pk}"


class RoomNote(models.Model):
    """An agent's internal note in a room: for the people who work the conversation, never sent
    to WhatsApp; kept with the room's history."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    text = models.TextField(max_length=4096)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"note {self.pk} in room {self.room_id}"


class RoomEvent(models.Model):
    """What happened to a room, numbered 1, 2, 3... per room. Agents get each event live and,
    after a dropped connection or a gap, everything after the last number they saw. It doubles
    as the room's audit trail: who did what, and when."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=40)
    data = models.JSONField(default=dict)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="room_event_unique_seq"),
        ]
        indexes = [
            # A room's last assignment (the reports: who had it last, once it is no agent's).
            models.Index(
                fields=["room", "seq"], condition=Q(kind="room.assigned"), name="event_assigned"
            ),
        ]

    def __str__(self) -> str:
        return f"room {self.room_id} #{self.seq} {self.kind}"


class Survey(models.Model):
    """The questions a customer is asked over WhatsApp once their room is closed by an agent or
    by inactivity (rooms/conversation/survey.py asks, rooms/bot/survey.py reads the answers).
    The room stays closed; while a survey asks, the customer's messages are its answers."""

    class Status(models.TextChoices):
        ASKING = "asking", "Asking"
        COMPLETED = "completed", "Completed"
        # Unanswered for SURVEY_TIMEOUT_MINUTES: the answers given so far are kept.
        EXPIRED = "expired", "Expired unanswered"
        # The customer wrote something that was not an answer: it went to a new room.
        ENDED = "ended", "Ended by a new conversation"

    class Step(models.TextChoices):
        NPS = "nps", "Would recommend (0-10)"
        RESOLVED = "resolved", "Resolved (yes/no)"
        SATISFACTION = "satisfaction", "Satisfaction (1-5)"
        COMMENT = "comment", "Comment"

    room = models.OneToOneField(Room, on_delete=models.CASCADE, related_name="survey")
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ASKING)
    # The question being asked now (the last one asked, once the survey has ended).
    step = models.CharField(max_length=12, choices=Step.choices, default=Step.NPS)
    # The question now asked was asked again after an invalid answer (once only).
    reasked = models.BooleanField(default=False)
    nps = models.PositiveSmallIntegerField("would recommend (0-10)", null=True, blank=True)
    resolved = models.BooleanField(null=True, blank=True)
    satisfaction = models.PositiveSmallIntegerField("satisfaction (1-5)", null=True, blank=True)
    comment = models.TextField(max_length=250, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    # When the question now waiting was sent: SURVEY_TIMEOUT_MINUTES count from it.
    asked_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # A customer answers one survey at a time: their messages have one place to go.
            models.UniqueConstraint(
                fields=["customer"], condition=Q(status="asking"), name="survey_one_asking"
            ),
            models.CheckConstraint(
                condition=Q(nps__isnull=True) | Q(nps__lte=10), name="survey_nps_range"
            ),
            models.CheckConstraint(
                condition=Q(satisfaction__isnull=True) | Q(satisfaction__range=(1, 5)),
                name="survey_satisfaction_range",
            ),
        ]
        indexes = [
            models.Index(fields=["asked_at"], condition=Q(status="asking"), name="survey_asking"),
            models.Index(fields=["started_at"], name="survey_started"),
        ]

    def __str__(self) -> str:
        return f"survey of room {self.room_id} ({self.status})"

    @property
    def is_complete(self) -> bool:
        return self.status == self.Status.COMPLETED


class Alert(models.Model):
    """Something supervisors must see, raised once per room and cause (the constraint says so,
    whatever number of periodic jobs look at once)."""

    class Cause(models.TextChoices):
        QUEUE_WAIT = "queue_wait", "Waiting too long in the queue"
        AGENT_REPLY = "agent_reply", "Customer unanswered by the agent"
        LOW_SCORE = "low_score", "Low survey score"

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="alerts")
    cause = models.CharField(max_length=20, choices=Cause.choices)
    # What it was about then: how long, and whose room.
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "cause"], name="alert_once_per_room_cause"),
        ]
        indexes = [models.Index(fields=["created_at"], name="alert_created")]

    def __str__(self) -> str:
        return f"{self.get_cause_display()} (room {self.room_id})"


class AlertRecipient(models.Model):
    """An address alerts are e-mailed to (the original system's notification list)."""

    email = models.EmailField(unique=True)
    active = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.email


class UnusableItem(models.Model):
    """An item of a signed webhook POST in a shape chatbridge does not know (a system notice
    without `from`, a new status kind, a message without id), kept as Meta sent it. The POST is
    answered 200 all the same, so Meta stops redelivering it; operators read these in the admin
    and decide whether chatbridge should learn the shape."""

    class Kind(models.TextChoices):
        MESSAGE = "message", "Message"
        STATUS = "status", "Status"
        # A container in the wrong shape, kept whole: what it held could not be read.
        ENTRY = "entry", "Entry"
        CHANGE = "change", "Change"

    kind = models.CharField(max_length=10, choices=Kind.choices)
    reason = models.CharField(max_length=200)
    # Meta's id when the item has one; many redeliveries of one item keep one row (see digest).
    wa_message_id = models.CharField(max_length=255, blank=True)
    # An entry that was JSON null is kept as SQL NULL: Django stores None so.
    payload = models.JSONField(null=True)
    # SHA-256 of the kind and the item's canonical JSON: Meta redelivers the same item for days,
    # and an item without an id has nothing else to be recognised by.
    digest = models.CharField(max_length=64, unique=True)
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"unusable {self.kind} {self.wa_message_id or self.digest[:12]}"
