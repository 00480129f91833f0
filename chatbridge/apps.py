from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig


class ChatbridgeConfig(AppConfig):
    name = "chatbridge"
    verbose_name = "chatbridge"


class ChatbridgeAdminConfig(AdminConfig):
    """Django's admin with chatbridge's site (chatbridge/admin_site.py)."""

    default_site = "chatbridge.admin_site.ChatbridgeAdminSite"
