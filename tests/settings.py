"""Test settings: the real settings with the test defaults of the configuration table.

Tests run with DEBUG on and against the machine's PostgreSQL and Redis, never substitutes.
"""

import os
from pathlib import Path

os.environ.setdefault("DEBUG", "1")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/chatbridge")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("CACHE_KEY_PREFIX", "chatbridge-test")
os.environ.setdefault("CHANNELS_REDIS_URL", "redis://127.0.0.1:6379/1")
os.environ.setdefault("CHANNELS_PREFIX", "chatbridge-test")
os.environ.setdefault("WATSON_TIMEOUT", "2")
os.environ.setdefault("WHATSAPP_RETRY_BACKOFF", "0.05")
# Off unless a test turns them on (tests/rooms/bot/test_read_marks.py): a read mark is one more
# call to the fake's messages endpoint, and would take the failures tests script for sends.
os.environ.setdefault("WHATSAPP_READ_MARKS", "0")
os.environ.setdefault(
    "MEDIA_ROOT", str(Path(__file__).resolve().parent.parent / "var" / "test-media")
)
os.environ.setdefault("MEDIA_FETCH_BACKOFF", "0.05")
# Off unless a test turns it on (tests/rooms/test_survey.py): a close that asks questions sends
# one message more than the closing text, which most tests of closing count.
os.environ.setdefault("SURVEY_ENABLED", "0")

from chatbridge.settings import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A transactional test's flush deletes rows rather than truncating tables (tests/database).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":  # noqa: F405
    DATABASES["default"]["ENGINE"] = "tests.database"  # noqa: F405
