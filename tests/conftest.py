"""Shared fixtures: the fake vendors as real HTTP servers, a clean cache, signed webhooks.

PostgreSQL and Redis are the machine's own; fault tests start private Redis servers
(tests/servers.py) and never touch the shared ones.
"""

import contextlib
import functools
import os
from collections.abc import Iterator

import pytest
from django.conf import settings
from django.core.cache import cache
from playwright.sync_api import Browser, sync_playwright

from chatbridge.cache import stats
from chatbridge.fakes import FakeTwilio, FakeWatson, FakeWhatsApp
from rooms.media.tasks import media_fetches_wait
from rooms.providers.twilio import twilio_client
from rooms.whatsapp.client import whatsapp_client
from tests.payloads import signed_post
from tests.servers import AppProcess
from watson.client import watson_client


@pytest.fixture(scope="session")
def fake_vendors() -> Iterator[tuple[FakeWatson, FakeWhatsApp]]:
    watson = FakeWatson(session_idle_timeout=settings.WATSON_SESSION_TIMEOUT).start()
    whatsapp = FakeWhatsApp(token=settings.WHATSAPP_TOKEN).start()
    # The SDK reads its service URL and credentials from the environment, as in production.
    os.environ["ASSISTANT_URL"] = watson.url
    os.environ["ASSISTANT_AUTH_TYPE"] = "noauth"
    settings.WHATSAPP_API_URL = f"{whatsapp.url}/v23.0"
    watson_client.cache_clear()
    whatsapp_client.cache_clear()
    yield watson, whatsapp
    watson.stop()
    whatsapp.stop()


@pytest.fixture(scope="session")
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio(
        account_sid=settings.TWILIO_ACCOUNT_SID, auth_token=settings.TWILIO_AUTH_TOKEN
    ).start()
    settings.TWILIO_API_URL = fake.url
    twilio_client.cache_clear()
    yield fake
    fake.stop()


@pytest.fixture
def twilio(fake_twilio: FakeTwilio) -> FakeTwilio:
    return fake_twilio


@pytest.fixture
def watson(fake_vendors: tuple[FakeWatson, FakeWhatsApp]) -> FakeWatson:
    return fake_vendors[0]


# The consoles' browser tests drive Debian's Chromium (Playwright's own download is not reachable
# here). Without the background-networking switches it keeps trying hosts this machine can't reach.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# The console speaks its browser's language, and Chromium's is en-US: the tests' pages read
# Spanish, the console's default, unless a test asks for another (`new_context(locale=...)`).
BROWSER_LOCALE = "es-ES"


@pytest.fixture
def browser(monkeypatch) -> Iterator[Browser]:
    # Playwright's sync API keeps an event loop on this thread; the test's own ORM calls are
    # still plain synchronous code, which Django would otherwise refuse next to a loop.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for name in ("new_context", "new_page"):
            opens = getattr(browser, name)
            setattr(browser, name, functools.partial(opens, locale=BROWSER_LOCALE))
        yield browser
        browser.close()


@pytest.fixture
def console_server(fake_vendors: tuple[FakeWatson, FakeWhatsApp]) -> Iterator[AppProcess]:
    """A Daphne process for the console's browser tests; rooms wait in the queue until taken."""
    process = AppProcess.daphne(AUTO_ASSIGN="0").start()
    yield process
    process.stop()


@pytest.fixture
def whatsapp(fake_vendors: tuple[FakeWatson, FakeWhatsApp]) -> FakeWhatsApp:
    return fake_vendors[1]


@pytest.fixture(autouse=True)
def media_storage(settings, tmp_path):
    """Each test's files in a folder of its own (room ids repeat from one test to the next)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": tmp_path / "media", "base_url": None},
        },
    }


@pytest.fixture(autouse=True)
def clean_state(
    fake_vendors: tuple[FakeWatson, FakeWhatsApp], fake_twilio: FakeTwilio
) -> Iterator[None]:
    for fake in (*fake_vendors, fake_twilio):
        fake.reset()
    _clear_cache()
    stats.reset()
    yield
    media_fetches_wait()  # a file still being fetched would write into the next test
    _clear_cache()


def _clear_cache() -> None:
    # Only this suite's keys: the shared Redis may hold other things.
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()


@pytest.fixture
def post_webhook(client):
    """POST a notification with a valid signature; returns the response."""

    def post(payload: dict | bytes, **headers: str):
        return signed_post(client, payload, **headers)

    return post


@pytest.fixture(scope="session", autouse=True)
def close_database_pool(django_db_setup, django_db_blocker) -> Iterator[None]:
    """Pooled connections would keep the test database busy when pytest-django drops it."""
    yield
    from django.db import connections

    with django_db_blocker.unblock():
        for conn in connections.all():
            conn.close()
            _close_pool(conn)
        # Best effort: it only helps the database drop that follows (if a test database was made).
        default = connections["default"]
        if str(default.settings_dict["NAME"]).startswith("test_"):
            with contextlib.suppress(Exception):
                _wait_for_other_sessions_to_end(default)


def _wait_for_other_sessions_to_end(conn, timeout: float = 3) -> None:
    """Server processes the tests stopped have exited, but PostgreSQL may take a moment to see
    their connections go, and consumer threads of WebsocketCommunicator tests keep theirs (it
    disables closing them). Dropping the test database needs them gone: wait, then end them."""
    import time

    deadline = time.monotonic() + timeout
    others = "FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
    name = conn.settings_dict["NAME"]
    with conn.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(f"SELECT count(*) {others}", [name])
            if cursor.fetchone()[0] == 0:
                break
            time.sleep(0.1)
        cursor.execute(f"SELECT pg_terminate_backend(pid) {others}", [name])
    conn.close()
    _close_pool(conn)


def _close_pool(conn) -> None:
    # Django's `pool` property opens a pool when there is none: only close one that was opened.
    if conn.alias in getattr(conn, "_connection_pools", {}):
        conn.close_pool()


# --- the reliability report (docs/RELIABILITY.md, written by `make reliability`) ----------------

_fault_records: list[dict] = []


@pytest.fixture
def record_fault(request):
    """Record what a fault or bad-input test did and what held, once its assertions passed."""

    def record(fault: str, *, done: str, held: str, figures: str = "", times: int = 1) -> None:
        _fault_records.append(
            {
                "fault": fault,
                "done": done,
                "times": times,
                "held": held,
                "figures": figures,
                "test": request.node.nodeid,
            }
        )

    return record


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("RELIABILITY_RECORDS")
    if target and _fault_records:
        import json
        from pathlib import Path

        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_text(json.dumps(_fault_records, indent=1, ensure_ascii=False))
