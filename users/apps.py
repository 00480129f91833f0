from django.apps import AppConfig


class UsersConfig(AppConfig):
    name = "users"
    verbose_name = "Customers"

    def ready(self) -> None:
        from users import signals  # noqa: F401
