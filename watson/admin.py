from django.contrib import admin

from watson.models import WatsonSession


@admin.register(WatsonSession)
class WatsonSessionAdmin(admin.ModelAdmin):
    list_display = ["room", "session_id", "created_at", "last_used_at", "expires_at"]
    search_fields = ["session_id", "room__id", "room__customer__uid"]
    readonly_fields = ["room", "session_id", "created_at", "last_used_at", "expires_at"]
    list_select_related = ["room"]

    def has_add_permission(self, request: object) -> bool:
        return False  # sessions are made by Watson, on a room's first bot turn
