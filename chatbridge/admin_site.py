"""The admin as a bank's operators use it: times in the business's time zone, and the people who
answer customers in a section of their own."""

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join

from users.selectors import display_name

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])

# The models that make up the desk's staff, shown together as "Agents".
_AGENT_MODELS = {
    ("auth", "User"),
    ("auth", "Group"),
    ("users", "AgentProfile"),
    ("users", "AgentPresence"),
}


@dataclass(frozen=True)
class AdminPage:
    """A page of the admin that is not a model's (the apps add theirs: rooms' reports): served
    under /admin/ through the site's admin_view (staff only, in the business's time zone), and
    listed in the index's sidebar for those `permitted` when it has a title."""

    route: str
    view: Callable[..., HttpResponseBase]
    name: str
    title: str = ""
    description: str = ""
    permitted: Callable[[HttpRequest], bool] = lambda request: True


class ChatbridgeAdminSite(admin.AdminSite):
    site_header = "chatbridge"
    site_title = "chatbridge"

    def __init__(self, name: str = "admin") -> None:
        super().__init__(name)
        self.pages: list[AdminPage] = []

    def page_add(self, page: AdminPage) -> None:
        self.pages.append(page)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        own: list[URLResolver | URLPattern] = [
            path(page.route, self.admin_view(page.view), name=page.name) for page in self.pages
        ]
        return [*own, *super().get_urls()]

    def each_context(self, request: HttpRequest) -> dict[str, Any]:
        context = super().each_context(request)
        context["listed_pages"] = [
            {"title": page.title, "description": page.description, "name": page.name}
            for page in self.pages
            if page.title and request.user.is_active and page.permitted(request)
        ]
        return context

    def admin_view(self, view: _View, cacheable: bool = False) -> _View:
        wrapped = super().admin_view(view, cacheable)

        @functools.wraps(wrapped)
        def in_business_time(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            # Stored in UTC; read where the bank works (BUSINESS_TIMEZONE).
            with timezone.override(settings.BUSINESS_TIMEZONE):
                response = wrapped(request, *args, **kwargs)
                if isinstance(response, TemplateResponse) and not response.is_rendered:
                    response.render()  # while the zone holds: a template renders after the view
                return response

        return cast(_View, in_business_time)

    def get_app_list(self, request: HttpRequest, app_label: str | None = None) -> list[dict]:
        apps = super().get_app_list(request, app_label)
        if app_label is not None:
            return apps
        agents: list[dict] = []
        for app in apps:
            keep: list[dict] = []
            for model in app["models"]:
                key = (app["app_label"], model["object_name"])
                (agents if key in _AGENT_MODELS else keep).append(model)
            app["models"] = keep
        apps = [app for app in apps if app["models"]]
        if agents:
            apps.insert(
                0,
                {
                    "name": "Agents",
                    "app_label": "agents",
                    "app_url": "",
                    "models": agents,
                    "has_module_perms": True,
                },
            )
        return apps


def admin_page_add(page: AdminPage) -> None:
    """Serve `page` in the admin (the site INSTALLED_APPS names: chatbridge's)."""
    if not isinstance(admin.site, ChatbridgeAdminSite):
        raise ImproperlyConfigured("chatbridge's admin pages need chatbridge's admin site")
    admin.site.page_add(page)


# How many of an object's admin changes its page shows (the History link has them all).
RECENT_CHANGES = 5


def recent_changes(obj: Model) -> str:
    """Who changed this object in the admin, and what, newest first: the admin's own history
    (LogEntry), on the object's page rather than behind its History button."""
    if obj.pk is None:
        return "-"
    entries = (
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(obj, for_concrete_model=False),
            object_id=str(obj.pk),
        )
        .select_related("user")
        .order_by("-action_time")[:RECENT_CHANGES]
    )
    rows = format_html_join(
        "",
        "<li>{} · {} · {}</li>",
        (
            (
                date_format(timezone.localtime(entry.action_time), "DATETIME_FORMAT"),
                display_name(entry.user),
                entry.get_change_message() or entry.get_action_flag_display(),
            )
            for entry in entries
        ),
    )
    history = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_history", args=[obj.pk])
    return format_html(
        '<ul class="changes">{}</ul><a href="{}">All changes</a>',
        rows or format_html("<li>{}</li>", "No change made in the admin yet."),
        history,
    )


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record to read: nobody adds, edits or deletes one from the admin."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


class LogEntryAdmin(ReadOnlyAdmin):
    """Every change made in the admin, by whom: to read, never to edit or delete."""

    list_display = ["action_time", "user", "content_type", "object_link", "action", "message"]
    list_filter = ["action_flag", "content_type", "user"]
    search_fields = ["object_repr", "change_message", "user__username"]
    date_hierarchy = "action_time"
    list_select_related = ["user", "content_type"]

    @admin.display(description="object")
    def object_link(self, entry: LogEntry) -> str:
        if entry.action_flag == DELETION:
            return entry.object_repr
        url = entry.get_admin_url()
        return (
            format_html('<a href="{}">{}</a>', url, entry.object_repr) if url else entry.object_repr
        )

    @admin.display(description="action")
    def action(self, entry: LogEntry) -> str:
        return entry.get_action_flag_display()

    @admin.display(description="what changed")
    def message(self, entry: LogEntry) -> str:
        return entry.get_change_message()
