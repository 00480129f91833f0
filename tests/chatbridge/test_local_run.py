"""The README's promise: `make run` starts chatbridge on its embedded defaults (SQLite, local
memory cache, the fake vendors), and `say` plays a customer against it."""

import subprocess
import sys

import pytest

from tests.servers import ROOT, AppProcess, free_port, wait_for_port


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """One embedded run for the module's tests (it takes seconds to start): each of them plays a
    customer of its own."""
    tmp_path = tmp_path_factory.mktemp("local-run")
    port, watson_port, whatsapp_port, twilio_port = (free_port() for _ in range(4))
    env = {
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'chatbridge.sqlite3'}",
        "REDIS_URL": "",
        "CHANNELS_REDIS_URL": "",
        "ASSISTANT_URL": f"http://127.0.0.1:{watson_port}",
        "ASSISTANT_AUTH_TYPE": "noauth",
        "WHATSAPP_API_URL": f"http://127.0.0.1:{whatsapp_port}/v23.0",
        "TWILIO_API_URL": f"http://127.0.0.1:{twilio_port}",
        "TWILIO_WEBHOOK_BASE_URL": f"http://127.0.0.1:{port}",
        # As the Makefile's LOCAL_ENV: the demo's second WhatsApp number's credentials.
        "WHATSAPP_TOKEN_DEMO_CARDS": "demo-cards-token",
        "WHATSAPP_SECRET_DEMO_CARDS": "demo-cards-secret",
    }
    process = AppProcess(
        [sys.executable, "manage.py", "runlocal", "--port", str(port)],
        {**_base_env(), **env},
    ).start()
    try:
        wait_for_port(port, timeout=60, process=process.process)
        yield f"http://127.0.0.1:{port}", {**_base_env(), **env}
    finally:
        process.stop()
        print(process.output()[-2000:])


def _base_env() -> dict[str, str]:
    import os

    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_", "DATABASE_", "REDIS_", "ASSISTANT_"))
    }


_SAY = [sys.executable, "manage.py", "say"]


def _say(
    url: str,
    env: dict[str, str],
    text: str,
    *,
    provider: str = "whatsapp",
    number: str = "",
    customer: str = "573001234567",
) -> subprocess.CompletedProcess:
    chosen = ["--number", number] if number else []
    return subprocess.run(
        [*_SAY, customer, text, "--url", url, "--wait", "3", "--provider", provider, *chosen],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_person_can_say_hola_and_see_the_bot_answer(local_run):
    url, env = local_run
    greeting = _say(url, env, "hola")
    assert greeting.returncode == 0, greeting.stderr
    assert "bot> ¡Hola! Soy el asistente virtual de chatbridge." in greeting.stdout

    echo = _say(url, env, "quiero saber mi saldo")
    assert "bot> Dijiste: quiero saber mi saldo" in echo.stdout

    options = _say(url, env, "opciones")
    assert "Saldo" in options.stdout and "Créditos" in options.stdout

    handoff = _say(url, env, "agente")
    assert "bot> Te comunico con un asesor." in handoff.stdout

    # The same number through Twilio is a customer of its own, with the bot.
    twilio = _say(url, env, "opciones", provider="twilio")
    assert twilio.returncode == 0, twilio.stderr
    assert "bot> Elige una opción\n1. Saldo\n2. Tarjetas\n3. Créditos" in twilio.stdout
    picked = _say(url, env, "3", provider="twilio")
    assert "bot> Dijiste: créditos" in picked.stdout

    # The demo's second WhatsApp number: a conversation of its own, answered from that number.
    cards = _say(url, env, "hola", number="100000000000002")
    assert cards.returncode == 0, cards.stderr
    assert "bot (from 100000000000002)> ¡Hola! Soy el asistente virtual" in cards.stdout
    unknown = _say(url, env, "hola", number="100000000000999")
    assert unknown.returncode == 1
    assert "is not a WhatsApp number chatbridge serves" in unknown.stderr


def test_missing_secret_stops_start_up_with_one_line():
    env = {**_base_env(), "DEBUG": "0", "SECRET_KEY": "x" * 50, "DATABASE_URL": "postgres://x@h/db"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "chatbridge: REDIS_URL is required when DEBUG is off (see .env.example)"
    ]
    env["REDIS_URL"] = "redis://127.0.0.1:6379/0"
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.stderr.strip() == (
        "chatbridge: WHATSAPP_APP_SECRET is required when DEBUG is off (see .env.example)"
    )


def test_a_person_can_send_a_photo_and_it_is_kept(local_run, tmp_path):
    """`make say FILE=...`: the photo goes through the fake WhatsApp's media store, the webhook
    names it, and the embedded run fetches and keeps it."""
    import sqlite3
    import time

    from tests.payloads import png

    url, env = local_run
    customer = "573001234568"
    assert "Te comunico con un asesor." in _say(url, env, "agente", customer=customer).stdout
    photo = tmp_path / "comprobante.png"
    photo.write_bytes(png(40, 30, (200, 30, 30)))
    sent = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "say",
            customer,
            "mi comprobante",
            "--url",
            url,
            "--wait",
            "1",
            "--file",
            str(photo),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sent.returncode == 0, sent.stderr
    database = sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///"))
    deadline, row = time.monotonic() + 15, None
    while time.monotonic() < deadline:
        row = database.execute(
            "SELECT type, text, media_status, media_size, mime_type FROM rooms_message"
            " WHERE type = 'image'"
        ).fetchone()
        if row and row[2] != "pending":
            break
        time.sleep(0.2)
    assert row == ("image", "mi comprobante", "stored", photo.stat().st_size, "image/png")


def test_twilio_on_in_production_stops_start_up_without_its_token():
    env = {
        **_base_env(),
        "DEBUG": "0",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": "postgres://x@h/db",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "WHATSAPP_APP_SECRET": "s",
        "WHATSAPP_VERIFY_TOKEN": "v",
        "WHATSAPP_TOKEN": "t",
        "WHATSAPP_PHONE_NUMBER_ID": "1",
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.stderr.strip() == (
        "chatbridge: TWILIO_AUTH_TOKEN is required when DEBUG is off (see .env.example)"
    )


def test_say_takes_any_text_and_refuses_a_malformed_number(local_run):
    url, env = local_run
    text = "dijo \"hola\" y 'adiós'\nsegunda línea $HOME `date`"
    said = _say(url, env, text, customer="573001234569")
    assert said.returncode == 0, said.stderr
    # Watson reads one line (newlines become spaces); nothing was read by a shell on the way.
    assert "bot> Dijiste: dijo \"hola\" y 'adiós' segunda línea $HOME `date`" in said.stdout
    wrong = subprocess.run(
        [sys.executable, "manage.py", "say", "+57 300 123", "hola", "--url", url],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode != 0
    assert "is not a WhatsApp id" in wrong.stderr


def test_make_say_passes_the_text_untouched_by_the_shell(tmp_path):
    """`make say TEXT='…'` put the text in a shell command line: a quote broke it."""
    text = "comillas \" y ' y $(echo inyectado)"
    dry = subprocess.run(
        ["make", "-n", "say", f"TEXT={text}", "VENV=/nonexistent"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert '"$SAY_TEXT"' in dry.stdout  # the recipe reads it from its environment
    assert "inyectado" not in dry.stdout
