from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from django.views.i18n import JavaScriptCatalog

from chatbridge.health import healthz, readyz
from chatbridge.metrics import metrics_view
from chatbridge.views import cache_stats
from rooms.views import (
    agent_console,
    agent_conversation,
    agent_customer_rooms,
    agent_file_upload,
    agent_search,
    message_file,
    operations_view,
    twilio_webhook,
    whatsapp_webhook,
)

urlpatterns = [
    path("whatsapp/external", whatsapp_webhook, name="whatsapp-webhook"),
    path("twilio/whatsapp", twilio_webhook, name="twilio-webhook"),
    path("twilio/status", twilio_webhook, name="twilio-status"),
    path("cache/stats", cache_stats, name="cache-stats"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("admin/operations/", operations_view, name="operations"),
    path("agent/", agent_console, name="agent-console"),
    path("agent/rooms/<int:room_id>/files", agent_file_upload, name="agent-file-upload"),
    path("agent/rooms/<int:room_id>/history", agent_customer_rooms, name="agent-customer-rooms"),
    path("agent/conversations/<int:room_id>", agent_conversation, name="agent-conversation"),
    path("agent/search", agent_search, name="agent-search"),
    path("files/<int:message_id>", message_file, name="message-file"),
    # The console's texts in the agent's language (rooms/static/rooms/agent.js), and the language
    # selector's form (Django's set_language).
    path("jsi18n/", JavaScriptCatalog.as_view(packages=["rooms"]), name="javascript-catalog"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(pattern_name="agent-console", permanent=False)),
]
