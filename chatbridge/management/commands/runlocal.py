import os
import signal
import socket
import subprocess
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from chatbridge.fakes import FakeTwilio, FakeWatson, FakeWhatsApp
from chatbridge.fakes.twilio import StatusCallbacks
from chatbridge.fakes.whatsapp import StatusWebhook
from rooms.models import MessageTemplate, WhatsAppNumber
from rooms.periodic import periodic_run

DEMO_TEMPLATE: dict[str, Any] = {
    "name": "seguimiento_caso",
    "language": "es",
    "body": "Hola {{1}}, soy {{2}} del banco. Seguimos con tu caso: respóndenos para continuar.",
    "parameters": ["customer_first_name", "agent_first_name"],
}


DEMO_NUMBER: dict[str, Any] = {
    "phone_number_id": "100000000000002",
    "name": "Tarjetas (demo)",
    "display_number": "+57 601 555 0102",
    "token_env": "WHATSAPP_TOKEN_DEMO_CARDS",
    "app_secret_env": "WHATSAPP_SECRET_DEMO_CARDS",
}


def _in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class Command(BaseCommand):
    help = (
        "Run chatbridge locally on the embedded defaults: the fake Watson, WhatsApp and Twilio "
        "servers, Daphne, and the periodic job (inactivity, resumed turns). DEBUG only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--watson-session-timeout", type=float, default=300)

    def handle(
        self, *args: object, port: int, watson_session_timeout: float, **options: object
    ) -> None:
        if not settings.DEBUG:
            raise CommandError("runlocal is for trying chatbridge out: set DEBUG=1")
        watson_url = os.environ.get("ASSISTANT_URL", "")
        whatsapp = urlsplit(settings.WHATSAPP_API_URL)
        twilio = urlsplit(settings.TWILIO_API_URL)
        local = {"127.0.0.1", "localhost"}
        if whatsapp.hostname not in local or twilio.hostname not in local or not watson_url:
            raise CommandError(
                "point WHATSAPP_API_URL, TWILIO_API_URL and ASSISTANT_URL at 127.0.0.1 "
                "(the Makefile does)"
            )
        ports = {
            "chatbridge": port,
            "the fake Watson": urlsplit(watson_url).port or 8081,
            "the fake WhatsApp": whatsapp.port or 8082,
            "the fake Twilio": twilio.port or 8083,
        }
        for what, number in ports.items():
            if _in_use(number):
                raise CommandError(
                    f"port {number} ({what}) is in use: another `make run`? Stop it, or free it"
                )
        fake_watson = FakeWatson(
            port=ports["the fake Watson"], session_idle_timeout=watson_session_timeout
        ).start()
        # Like Meta, the fake reports each message's ticks to the webhook: sent and delivered,
        # then read as if the customer opened it two seconds later.
        statuses = StatusWebhook(
            url=f"http://127.0.0.1:{port}/whatsapp/external",
            app_secret=settings.WHATSAPP_APP_SECRET,
            delay=0.5,
            read_after=2.0,
        )
        fake_whatsapp = FakeWhatsApp(
            port=whatsapp.port or 8082,
            token=settings.WHATSAPP_TOKEN,
            status_webhook=statuses,
            templates=((DEMO_TEMPLATE["name"], DEMO_TEMPLATE["language"]),),
        ).start()
        # Twilio's callbacks go where each send's StatusCallback says: TWILIO_WEBHOOK_BASE_URL,
        # this server by default.
        fake_twilio = FakeTwilio(
            port=twilio.port or 8083,
            account_sid=settings.TWILIO_ACCOUNT_SID,
            auth_token=settings.TWILIO_AUTH_TOKEN,
            statuses=StatusCallbacks(delay=0.5, read_after=2.0),
        ).start()
        call_command("migrate", interactive=False, verbosity=0)
        self._demo_admin()
        self._demo_template()
        self._demo_number(fake_whatsapp)
        stop = threading.Event()
        resumer = threading.Thread(target=self._periodic_loop, args=(stop,), daemon=True)
        resumer.start()
        server = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                sys.executable,
                "-m",
                "daphne",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "chatbridge.asgi:application",
            ],
        )
        self.stdout.write(
            f"chatbridge on http://127.0.0.1:{port}/ (admin: /admin/, user admin, password admin)\n"
            f"fake Watson {fake_watson.url}, fake WhatsApp {fake_whatsapp.url}, "
            f"fake Twilio {fake_twilio.url}\n"
            f'try, in another terminal: make say TEXT="hola" (or PROVIDER=twilio, or '
            f"NUMBER={DEMO_NUMBER['phone_number_id']}: the demo's second WhatsApp number)\n"
        )
        signal.signal(signal.SIGTERM, lambda *_: server.terminate())
        try:
            server.wait()
        except KeyboardInterrupt:
            server.terminate()
            server.wait(timeout=10)
        finally:
            stop.set()
            fake_watson.stop()
            fake_whatsapp.stop()
            fake_twilio.stop()

    def _demo_admin(self) -> None:
        users = get_user_model().objects
        if not users.filter(username="admin").exists():
            users.create_superuser("admin", "admin@example.com", "admin")

    def _demo_number(self, fake_whatsapp: FakeWhatsApp) -> None:
        # A second business number, as an operator registers one (its credentials named, in the
        # environment `make run` sets), so `make say NUMBER=…` plays a customer of another line.
        if not os.environ.get(DEMO_NUMBER["token_env"]):
            return
        WhatsAppNumber.objects.get_or_create(
            phone_number_id=DEMO_NUMBER["phone_number_id"], defaults=DEMO_NUMBER
        )
        fake_whatsapp.number_add(
            DEMO_NUMBER["phone_number_id"], os.environ[DEMO_NUMBER["token_env"]]
        )

    def _demo_template(self) -> None:
        # The one template the fake WhatsApp knows as approved: what an agent sends once a
        # customer's 24 hours have passed. A real business enters its own in the admin.
        MessageTemplate.objects.get_or_create(
            name=DEMO_TEMPLATE["name"], language=DEMO_TEMPLATE["language"], defaults=DEMO_TEMPLATE
        )

    def _periodic_loop(self, stop: threading.Event) -> None:
        while not stop.wait(30):
            periodic_run()
            close_old_connections()
