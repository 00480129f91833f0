"""ASGI entry point served by Daphne: HTTP to Django, websockets to the agent consumer."""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbridge.settings")

# Django must be set up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from chatbridge.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Django's session login, and only pages served from ALLOWED_HOSTS may open the socket.
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
