from django.contrib import admin
from django.urls import path

from chatbridge.views import cache_stats
from rooms.views import whatsapp_webhook

urlpatterns = [
    path("whatsapp/external", whatsapp_webhook, name="whatsapp-webhook"),
    path("cache/stats", cache_stats, name="cache-stats"),
    path("admin/", admin.site.urls),
]
