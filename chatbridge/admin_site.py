"""The admin as a bank's operators use it: times in the business's time zone, and the people who
answer customers in a section of their own."""

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponseBase
from django.template.response import TemplateResponse
from django.utils import timezone

_View = TypeVar("_View", bound=Callable[..., HttpResponseBase])

# The models that make up the desk's staff, shown together as "Agents".
_AGENT_MODELS = {("auth", "User"), ("auth", "Group"), ("users", "AgentProfile")}


class ChatbridgeAdminSite(admin.AdminSite):
    site_header = "chatbridge"
    site_title = "chatbridge"

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
