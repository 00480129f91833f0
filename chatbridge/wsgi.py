"""WSGI entry point, kept working so HTTP can move to a WSGI server if measurements say so."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatbridge.settings")

application = get_wsgi_application()
