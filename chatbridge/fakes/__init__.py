"""In-process fake vendor servers (Watson Assistant v2, WhatsApp Cloud API, Twilio) for tests
and dev.

Run them standalone with ``python manage.py fakes``; drive them over ``/_fake/*``.
"""

from chatbridge.fakes.twilio import FakeTwilio
from chatbridge.fakes.watson import FakeWatson
from chatbridge.fakes.whatsapp import FakeWhatsApp

__all__ = ["FakeTwilio", "FakeWatson", "FakeWhatsApp"]
