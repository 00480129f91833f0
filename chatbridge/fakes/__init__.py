"""In-process fake vendor servers (Watson Assistant v2, WhatsApp Cloud API) for tests and dev.

Run both standalone with ``python manage.py fakes``; drive them over ``/_fake/*``.
"""

from chatbridge.fakes.watson import FakeWatson
from chatbridge.fakes.whatsapp import FakeWhatsApp

__all__ = ["FakeWatson", "FakeWhatsApp"]
