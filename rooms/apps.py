from django.apps import AppConfig


class RoomsConfig(AppConfig):
    name = "rooms"
    verbose_name = "Rooms"

    def ready(self) -> None:
        # Django forces these imports here: models (which both import) load only once every
        # app is registered, after this module.
        from chatbridge.metrics import scrape_collector_add
        from rooms import signals  # noqa: F401
        from rooms.desk import receivers  # noqa: F401
        from rooms.desk.selectors import QueueCollector
        from rooms.reports import receivers as report_receivers  # noqa: F401

        scrape_collector_add(QueueCollector())
