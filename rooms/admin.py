import datetime as dt
import os
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.timesince import timesince

from chatbridge.admin_site import AdminPage, ReadOnlyAdmin, admin_page_add, recent_changes
from rooms.conversation.services import room_close
from rooms.desk.selectors import room_metrics_get
from rooms.events import message_data
from rooms.lines import line_of
from rooms.media.tasks import media_fetch_again
from rooms.models import (
    Alert,
    AlertRecipient,
    Area,
    CannedReply,
    ClosureReason,
    Message,
    MessageTemplate,
    Room,
    RoomEvent,
    RoomNote,
    Survey,
    UnusableItem,
    WhatsAppNumber,
)
from rooms.reports.views import reports_csv, reports_permitted, reports_view


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    can_delete = False
    ordering = ["id"]
    # The conversation is a record: operators read it, nobody rewrites it.
    fields = readonly_fields = (
        "created_at",
        "direction",
        "author",
        "type",
        "content",
        "status",
        "error_code",
        "payload",
    )

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.display(description="What it says")
    def content(self, message: Message) -> str:
        """The message as an agent sees it: its text, its file (through the checked view),
        a location's map link, contacts, a quote, an ad referral, an edit or a deletion."""
        return message_summary(message)


def message_summary(message: Message) -> str:
    data = message_data(message)
    parts = [format_html("<div>{}</div>", message.text)] if message.text else []
    media = data.get("media")
    if media and media["url"]:
        label = media["file_name"] or f"{message.type} ({media['mime_type']})"
        parts.append(format_html('<a href="{}">{}</a>', media["url"], label))
    elif media:
        state = media["status"] if not media["error"] else f"could not fetch ({media['error']})"
        parts.append(format_html("<div>[{}: {}]</div>", message.type, state))
    if "location" in data:
        place = data["location"]
        parts.append(
            format_html(
                '<a href="{}" rel="noopener noreferrer">{}, {}</a>',
                place["map_url"],
                place["latitude"],
                place["longitude"],
            )
        )
    for card in data.get("contacts", []):
        parts.append(format_html("<div>{}: {}</div>", card["name"], ", ".join(card["phones"])))
    if data.get("quoted"):
        parts.append(format_html("<div>quoting: “{}”</div>", data["quoted"].get("text", "")))
    if data.get("referral"):
        parts.append(format_html("<div>from an ad: {}</div>", data["referral"]["headline"]))
    if message.edited_at:
        parts.append(format_html("<div>(edited {})</div>", message.edited_at))
    if message.deleted_at:
        parts.append(format_html("<div>(deleted by the customer {})</div>", message.deleted_at))
    return format_html_join("", "{}", ((part,) for part in parts)) if parts else "-"


class RoomNoteInline(admin.TabularInline):
    """The agents' internal notes: never sent to the customer, kept with the room."""

    model = RoomNote
    extra = 0
    can_delete = False
    fields = readonly_fields = ("created_at", "author", "text")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class RoomEventInline(admin.TabularInline):
    """The room's audit trail: who did what, and when."""

    model = RoomEvent
    extra = 0
    can_delete = False
    ordering = ["seq"]
    fields = readonly_fields = ("seq", "created_at", "kind", "actor", "data")

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class SurveyInline(admin.StackedInline):
    """The customer's answers after the close: theirs, never edited."""

    model = Survey
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "status",
        "nps",
        "resolved",
        "satisfaction",
        "comment",
        "started_at",
        "ended_at",
    )

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    """Messages, searchable across rooms; a file that could not be fetched can be fetched again
    (a token fixed, a type now accepted)."""

    list_display = ["id", "room", "direction", "type", "status", "media_status", "created_at"]
    list_filter = ["direction", "type", "media_status"]
    search_fields = ["wa_message_id", "room__customer__uid"]
    list_select_related = ["room"]
    actions = ["fetch_again"]

    def get_readonly_fields(self, request: HttpRequest, obj: object = None) -> list[str]:
        return [field.name for field in Message._meta.fields] + ["content"]

    def get_fields(self, request: HttpRequest, obj: object = None) -> tuple[str, ...]:
        return ("content", *(field.name for field in Message._meta.fields))

    @admin.display(description="What it says")
    def content(self, message: Message) -> str:
        return message_summary(message)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    @admin.action(description="Fetch the selected files again", permissions=["change"])
    def fetch_again(self, request: HttpRequest, queryset: QuerySet[Message]) -> None:
        count = media_fetch_again(message_ids=list(queryset.values_list("pk", flat=True)))
        self.message_user(request, f"{count} file(s) will be fetched again.", messages.SUCCESS)


@admin.register(CannedReply)
class CannedReplyAdmin(admin.ModelAdmin):
    """Ready answers agents pick with / in the composer."""

    list_display = ["title", "shortcut", "area", "position", "active"]
    list_editable = ["position", "active"]
    list_filter = ["area", "active"]
    search_fields = ["title", "shortcut", "text"]


@admin.register(MessageTemplate)
class MessageTemplateAdmin(admin.ModelAdmin):
    """The templates approved in Meta's WhatsApp Manager, as agents may send them; Meta's status
    updates arrive by webhook and are shown here."""

    list_display = ["name", "language", "status", "active", "status_updated_at"]
    list_filter = ["status", "active", "language"]
    search_fields = ["name", "body"]
    readonly_fields = ["status", "status_reason", "status_updated_at"]
    fields = ["name", "language", "header", "body", "parameters", "active", *readonly_fields]


@admin.register(ClosureReason)
class ClosureReasonAdmin(admin.ModelAdmin):
    list_display = ["title", "area", "active", "position"]
    list_editable = ["active", "position"]
    list_filter = ["area", "active"]


@admin.register(AlertRecipient)
class AlertRecipientAdmin(admin.ModelAdmin):
    """Who is e-mailed the supervisors' alerts."""

    list_display = ["email", "active"]
    list_editable = ["active"]


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    """What supervisors were alerted about: to read."""

    list_display = ["created_at", "cause", "room", "data"]
    list_filter = ["cause", "created_at"]
    list_select_related = ["room"]
    fields = readonly_fields = ("created_at", "cause", "room", "data")


@admin.register(Survey)
class SurveyAdmin(ReadOnlyAdmin):
    """The post-close surveys, as the customers answered them."""

    list_display = ["started_at", "room", "status", "nps", "resolved", "satisfaction", "comment"]
    list_filter = ["status", "resolved", "satisfaction", "started_at"]
    list_select_related = ["room"]
    date_hierarchy = "started_at"
    fields = readonly_fields = (
        "room",
        "status",
        "step",
        "nps",
        "resolved",
        "satisfaction",
        "comment",
        "started_at",
        "asked_at",
        "ended_at",
    )


@admin.register(WhatsAppNumber)
class WhatsAppNumberAdmin(admin.ModelAdmin):
    """The business's WhatsApp numbers besides the main one (WHATSAPP_PHONE_NUMBER_ID, always
    served): each answered from itself, with its area and assistant. Tokens and secrets stay in
    the environment; this page only says whether this process has them."""

    list_display = [
        "name",
        "phone_number_id",
        "display_number",
        "area",
        "assistant",
        "credentials",
        "active",
    ]
    list_filter = ["active", "area"]
    search_fields = ["name", "phone_number_id", "display_number"]
    readonly_fields = ["credentials"]
    fields = [
        "name",
        "phone_number_id",
        "display_number",
        "token_env",
        "app_secret_env",
        "credentials",
        "area",
        "watson_assistant_id",
        "watson_environment_id",
        "active",
    ]

    @admin.display(description="assistant")
    def assistant(self, number: WhatsAppNumber) -> str:
        return number.watson_assistant_id or "(WATSON_ASSISTANT_ID)"

    @admin.display(description="credentials in this process")
    def credentials(self, number: WhatsAppNumber) -> str:
        missing = [
            name
            for name in (number.token_env, number.app_secret_env)
            if name and not os.environ.get(name)
        ]
        if not number.pk:
            return "—"
        return f"missing: {', '.join(missing)}" if missing else "both set"

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False  # rooms remember the number; switch it off instead


@admin.register(Area)
class AreaAdmin(admin.ModelAdmin):
    """The teams: who works each, and what waits in each."""

    list_display = ["name", "code", "is_default", "agent_count", "waiting", "position"]
    list_editable = ["position"]
    filter_horizontal = ["agents"]
    search_fields = ["name", "code"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Area]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                agent_count=Count("agents", distinct=True),
                waiting=Count("rooms", filter=Q(rooms__status=Room.Status.QUEUED), distinct=True),
            )
        )

    @admin.display(description="agents", ordering="agent_count")
    def agent_count(self, area: Area) -> int:
        return area.agent_count  # type: ignore[attr-defined]

    @admin.display(description="waiting now", ordering="waiting")
    def waiting(self, area: Area) -> int:
        return area.waiting  # type: ignore[attr-defined]

    def save_model(self, request: HttpRequest, obj: Area, form: Any, change: bool) -> None:
        # One default area, always: marking another moves the mark; unmarking the only one is
        # refused (hand-offs that name no area go there).
        with transaction.atomic():
            if obj.is_default:
                Area.objects.exclude(pk=obj.pk).filter(is_default=True).update(is_default=False)
            elif not Area.objects.exclude(pk=obj.pk).filter(is_default=True).exists():
                obj.is_default = True
                self.message_user(
                    request,
                    f"{obj} stays the default area: mark another one as default instead.",
                    messages.WARNING,
                )
            super().save_model(request, obj, form, change)

    # Rooms keep the area they were in: an area is retired, not deleted (PROTECT says so too).
    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "customer",
        "status",
        "agent",
        "opened_at",
        "last_activity_at",
        "closed_at",
        "duration",
    ]
    list_filter = ["status", "area", "line", "opened_at"]
    search_fields = ["customer__uid", "customer__wa_id", "customer__name"]
    list_select_related = ["customer", "agent"]
    readonly_fields = [
        "customer",
        "status",
        "agent",
        "assigned_at",
        "last_customer_at",
        "opened_at",
        "queued_at",
        "last_activity_at",
        "closed_at",
        "closed_by",
        "closed_reason",
        "area",
        "number",
        "handoff_note",
        "duration",
        "metrics",
        "changes",
    ]
    # Assignment goes through the agents' services (capacity, events), never a bare edit here.
    fields = tuple(readonly_fields)
    inlines = [SurveyInline, MessageInline, RoomNoteInline, RoomEventInline]
    actions = ["close_rooms"]

    @admin.display(description="Metrics (cached 30 s)")
    def metrics(self, room: Room) -> str:
        if room.pk is None:
            return "-"
        data = room_metrics_get(room_id=room.pk)
        return format_html_join(
            ", ", "{}: {}", ((k.replace("_", " "), _readable(v)) for k, v in data.items())
        )

    @admin.display(description="Changes in the admin")
    def changes(self, room: Room) -> str:
        return recent_changes(room)

    @admin.display(description="WhatsApp number written to")
    def number(self, room: Room) -> str:
        if not room.line:
            return f"the main one ({settings.WHATSAPP_PHONE_NUMBER_ID})"
        return f"{line_of(room.line).name or 'not registered'} ({room.line})"

    @admin.display(description="Open for")
    def duration(self, room: Room) -> str:
        """How long the conversation lasted (or has lasted so far), as a person says it."""
        return timesince(room.opened_at, room.closed_at or timezone.now())

    # A bank's conversation records: kept, never deleted from here (retention is a command);
    # and made by conversations, never by hand.
    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Close the selected rooms", permissions=["close"])
    def close_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        closed = 0
        for room in queryset.exclude(status=Room.Status.CLOSED):
            if room_close(room=room, by=_staff(request), reason="closed from the admin"):
                closed += 1
                # In the room's admin history: who closed it from here.
                self.log_change(request, room, "Closed from the admin")
        self.message_user(request, f"{closed} room(s) closed.", messages.SUCCESS)

    def has_close_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rooms.close_room")


@admin.register(UnusableItem)
class UnusableItemAdmin(ReadOnlyAdmin):
    """What Meta sent that chatbridge could not use: a record for operators, never edited."""

    list_display = ["received_at", "kind", "reason", "wa_message_id"]
    list_filter = ["kind", "received_at"]
    search_fields = ["wa_message_id", "reason"]
    readonly_fields = ("received_at", "kind", "reason", "wa_message_id", "digest", "payload")
    fields = readonly_fields


def _readable(value: object) -> object:
    """A time as the admin shows times (the business's zone, to the second); else itself."""
    if isinstance(value, dt.datetime):
        return date_format(timezone.localtime(value), "DATETIME_FORMAT")
    return value


def _staff(request: HttpRequest) -> User | None:
    """The admin's user (the admin is staff-only: never anonymous here)."""
    return request.user if isinstance(request.user, User) else None


# The reports (rooms/reports/): the page, listed in the index's sidebar for those who may read
# it, and its tables as CSV.
admin_page_add(
    AdminPage(
        "reports/",
        reports_view,
        "reports",
        title="Reports",
        description="Conversations, waits, surveys and agents by day, area and agent.",
        permitted=reports_permitted,
    )
)
admin_page_add(AdminPage("reports/<str:table>.csv", reports_csv, "reports-csv"))
