from django.apps import AppConfig


class WatsonConfig(AppConfig):
    name = "watson"
    verbose_name = "Watson Assistant"

    def ready(self) -> None:
        from watson import signals  # noqa: F401
