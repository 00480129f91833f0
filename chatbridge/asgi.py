"""ASGI entry point served by Daphne: HTTP now, agent websockets next."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbridge.settings")

# Django must be set up before anything imports models (the websocket consumers will).
django_asgi_app = get_asgi_application()

application = ProtocolTypeRouter({"http": django_asgi_app})
