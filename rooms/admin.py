from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from rooms.conversation.services import room_close
from rooms.desk.selectors import room_metrics_get
from rooms.models import ClosureReason, Message, Room, RoomEvent, UnusableItem


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
        "text",
        "status",
        "error_code",
        "payload",
    )

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


@admin.register(ClosureReason)
class ClosureReasonAdmin(admin.ModelAdmin):
    list_display = ["title", "active", "position"]
    list_editable = ["active", "position"]


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
    ]
    list_filter = ["status", "opened_at"]
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
        "handoff_note",
        "metrics",
    ]
    # Assignment goes through the agents' services (capacity, events), never a bare edit here.
    fields = tuple(readonly_fields)
    inlines = [MessageInline, RoomEventInline]
    actions = ["close_rooms"]

    @admin.display(description="Metrics (cached 30 s)")
    def metrics(self, room: Room) -> str:
        if room.pk is None:
            return "-"
        data = room_metrics_get(room_id=room.pk)
        return format_html_join(", ", "{}: {}", ((k.replace("_", " "), v) for k, v in data.items()))

    @admin.action(description="Close the selected rooms", permissions=["close"])
    def close_rooms(self, request: HttpRequest, queryset: QuerySet[Room]) -> None:
        closed = sum(
            room_close(room=room, by=_staff(request), reason="closed from the admin")
            for room in queryset.exclude(status=Room.Status.CLOSED)
        )
        self.message_user(request, f"{closed} room(s) closed.", messages.SUCCESS)

    def has_close_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rooms.close_room")


@admin.register(UnusableItem)
class UnusableItemAdmin(admin.ModelAdmin):
    """What Meta sent that chatbridge could not use: a record for operators, never edited."""

    list_display = ["received_at", "kind", "reason", "wa_message_id"]
    list_filter = ["kind", "received_at"]
    search_fields = ["wa_message_id", "reason"]
    readonly_fields = ("received_at", "kind", "reason", "wa_message_id", "digest", "payload")
    fields = readonly_fields

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _staff(request: HttpRequest) -> User | None:
    """The admin's user (the admin is staff-only: never anonymous here)."""
    return request.user if isinstance(request.user, User) else None
