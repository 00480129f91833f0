from django.apps import AppConfig


class ChatbridgeConfig(AppConfig):
    name = "chatbridge"
    verbose_name = "chatbridge"
