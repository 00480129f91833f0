from django.contrib import admin

from users.models import Customer


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["__str__", "provider", "uid", "name", "created_at", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["uid", "wa_id", "user_id", "name"]
    # The identity fields come from WhatsApp; changing them here would split a customer in two.
    readonly_fields = [
        "provider",
        "uid",
        "wa_id",
        "user_id",
        "public_id",
        "created_at",
        "updated_at",
    ]
    fields = [*readonly_fields[:4], "name", *readonly_fields[4:]]
