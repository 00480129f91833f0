from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from chatbridge.admin_site import LogEntryAdmin, ReadOnlyAdmin, recent_changes
from users.models import AgentPresence, AgentProfile, Customer

admin.site.register(LogEntry, LogEntryAdmin)


class AgentProfileInline(admin.StackedInline):
    model = AgentProfile
    can_delete = False
    fields = ["capacity", "available", "last_seen_at", "last_assigned_at"]
    readonly_fields = ["last_seen_at", "last_assigned_at"]
    verbose_name_plural = "agent profile (add the user to the 'agents' group to make them an agent)"


admin.site.unregister(User)


@admin.register(User)
class AgentUserAdmin(UserAdmin):
    inlines = [*UserAdmin.inlines, AgentProfileInline]


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "capacity", "available", "last_seen_at", "last_assigned_at"]
    list_editable = ["capacity", "available"]
    readonly_fields = ["last_seen_at", "last_assigned_at"]
    search_fields = ["user__username", "user__first_name", "user__last_name"]


@admin.register(AgentPresence)
class AgentPresenceAdmin(ReadOnlyAdmin):
    """When agents were online, as the reports add it up: recorded by their consoles."""

    list_display = ["user", "available", "started_at", "seen_at", "ended_at"]
    list_filter = ["available", "started_at", "user"]
    list_select_related = ["user"]
    date_hierarchy = "started_at"


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["__str__", "provider", "uid", "name", "profile_name", "created_at"]
    list_filter = ["provider"]
    search_fields = ["uid", "wa_id", "user_id", "name"]
    # The identity fields come from WhatsApp; changing them here would split a customer in two.
    readonly_fields = [
        "provider",
        "uid",
        "wa_id",
        "user_id",
        "profile_name",
        "public_id",
        "created_at",
        "updated_at",
        "changes",
    ]
    fields = [*readonly_fields[:4], "name", "name_edited", "notes", *readonly_fields[4:]]

    @admin.display(description="Changes in the admin")
    def changes(self, customer: Customer) -> str:
        return recent_changes(customer)

    def save_model(self, request: HttpRequest, obj: Customer, form: Any, change: bool) -> None:
        # An operator's name wins from now on over the WhatsApp profile's (README, "Agents").
        if "name" in form.changed_data:
            obj.name_edited = True
        elif "name_edited" in form.changed_data and not obj.name_edited:
            obj.name = obj.profile_name or obj.name  # back to following WhatsApp
        super().save_model(request, obj, form, change)

    # A customer carries a bank's conversation records: never deleted from here; and comes
    # from WhatsApp, never made by hand.
    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


# django-axes' own admin, with its one action declaring what it needs: it deletes records, so
# view-only staff do not get it.
admin.site.unregister(AccessAttempt)


@admin.register(AccessAttempt)
class LoginAttemptAdmin(AccessAttemptAdmin):
    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request: HttpRequest, queryset: QuerySet) -> None:
        super().cleanup_expired_attempts(request, queryset)
