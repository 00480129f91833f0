"""``manage.py fakes``: run the fake Watson, WhatsApp and Twilio servers until interrupted.

Meant for local development and end-to-end runs: point the project's Watson service URL,
WhatsApp Graph URL and Twilio API URL at the printed addresses and drive the fakes over
``/_fake/*``.
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from chatbridge.fakes import FakeTwilio, FakeWatson, FakeWhatsApp
from chatbridge.fakes.twilio import StatusCallbacks
from chatbridge.fakes.whatsapp import StatusWebhook


class Command(BaseCommand):
    help = "Run fake Watson Assistant, WhatsApp Cloud API and Twilio servers until Ctrl+C/SIGTERM."

    # The fakes need neither the database nor a fully valid project to be useful.
    requires_system_checks: list[str] = []
    requires_migrations_checks = False

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--watson-port", type=int, default=8081)
        parser.add_argument("--whatsapp-port", type=int, default=8082)
        parser.add_argument("--twilio-port", type=int, default=8083)
        parser.add_argument(
            "--whatsapp-token",
            default=None,
            help="Bearer token the WhatsApp fake requires (default: accept any).",
        )
        parser.add_argument("--session-idle-timeout", type=float, default=300.0)
        parser.add_argument(
            "--keep-alive",
            action="store_true",
            help="Persistent HTTP/1.1 connections, as the real vendors (the benchmark uses it).",
        )
        parser.add_argument(
            "--status-webhook",
            default="",
            help="chatbridge's webhook URL: report each message's sent and delivered there.",
        )
        parser.add_argument(
            "--status-app-secret",
            default="",
            help="The app secret the status notifications are signed with.",
        )
        parser.add_argument(
            "--twilio-callbacks",
            action="store_true",
            help="Call each message's StatusCallback back (queued, sent, delivered, read).",
        )
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Interface to bind (use 0.0.0.0 inside containers).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        watson = FakeWatson(
            port=options["watson_port"],
            session_idle_timeout=options["session_idle_timeout"],
            host=options["host"],
        )
        statuses = None
        if options["status_webhook"]:
            statuses = StatusWebhook(
                url=options["status_webhook"], app_secret=options["status_app_secret"]
            )
        whatsapp = FakeWhatsApp(
            port=options["whatsapp_port"],
            token=options["whatsapp_token"],
            host=options["host"],
            status_webhook=statuses,
        )
        # The account and token chatbridge's settings hold: the fake checks the one and signs
        # its callbacks with the other.
        twilio = FakeTwilio(
            port=options["twilio_port"],
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            host=options["host"],
            statuses=StatusCallbacks(read_after=2.0) if options["twilio_callbacks"] else None,
        )
        watson.keep_alive = whatsapp.keep_alive = twilio.keep_alive = options["keep_alive"]
        stop = threading.Event()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stop.set()

        previous = signal.signal(signal.SIGTERM, on_signal)
        try:
            try:
                watson.start()
                whatsapp.start()
                twilio.start()
            except OSError as exc:  # typically "address already in use"
                raise CommandError(f"cannot start fakes: {exc}") from exc
            # Bare URLs on stdout (watson, whatsapp, twilio) so scripts can read them; labels go
            # to stderr.
            self.stdout.write(watson.url)
            self.stdout.write(whatsapp.url)
            self.stdout.write(twilio.url)
            self.stdout.flush()
            print(
                f"fake Watson on {watson.url}, fake WhatsApp on {whatsapp.url}, "
                f"fake Twilio on {twilio.url}; Ctrl+C to stop",
                file=sys.stderr,
                flush=True,
            )
            # wait() with a timeout keeps the main thread responsive to Ctrl+C.
            while not stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            twilio.stop()
            whatsapp.stop()
            watson.stop()
