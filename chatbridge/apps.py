from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class ChatbridgeConfig(AppConfig):
    name = "chatbridge"
    verbose_name = "chatbridge"


class ChatbridgeAdminConfig(admin_apps.AdminConfig):
    """Django's admin with chatbridge's site (chatbridge/admin_site.py)."""

    default = False  # "chatbridge" names ChatbridgeConfig; this one is named in INSTALLED_APPS
    default_site = "chatbridge.admin_site.ChatbridgeAdminSite"
