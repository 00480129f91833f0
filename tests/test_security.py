"""Every door: logins, CSRF, the admin, headers, production settings, and what the logs keep."""

import logging
import subprocess
import sys

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.factories import AgentFactory
from tests.payloads import text_from
from tests.servers import ROOT

pytestmark = pytest.mark.django_db(transaction=True)


def login(
    client: Client,
    username: str,
    password: str,
    ip: str = "198.51.100.7",
    url: str = "/accounts/login/",
):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_five_failed_logins_lock_the_address_for_fifteen_minutes(record_fault):
    AgentFactory(username="ana", password="clave-correcta")
    AgentFactory(username="beto", password="clave-de-beto")
    client = Client()
    for _ in range(5):
        assert login(client, "ana", "wrong").status_code == 200  # the form again, with an error
    locked = login(client, "ana", "clave-correcta")
    assert locked.status_code == 200
    assert "_auth_user_id" not in client.session  # even the right password is refused now
    # The admin's login counts the same attempts.
    admin = login(Client(), "ana", "clave-correcta", url="/admin/login/")
    assert "_auth_user_id" not in admin.wsgi_request.session
    # The address is locked for every account, not only the one it guessed.
    assert "_auth_user_id" not in login(Client(), "beto", "clave-de-beto").wsgi_request.session
    # Another address is not affected, not even for the guessed account: a lock by username
    # alone would let anyone lock every agent out (tests/users/test_login_lockout.py).
    other = Client()
    assert login(other, "beto", "clave-de-beto", ip="203.0.113.9").status_code == 302
    assert login(Client(), "ana", "clave-correcta", ip="203.0.113.9").status_code == 302
    record_fault(
        "Login brute force",
        done="5 wrong passwords from one address, then the right one (console and admin)",
        held=(
            "refused for 15 minutes from that address (every account); the same accounts "
            "log in from other addresses"
        ),
        times=9,
    )


def test_behind_the_proxy_the_address_comes_from_x_forwarded_for(settings):
    """gunicorn sees the proxy's address; the proxy overwrites X-Forwarded-For with the client's."""
    settings.TRUST_X_FORWARDED_FOR = True
    AgentFactory(username="ana", password="clave-correcta")
    AgentFactory(username="beto", password="clave-de-beto")
    proxy = "10.0.0.2"

    def via_proxy(client: Client, password: str, client_address: str, username: str = "ana"):
        return client.post(
            "/accounts/login/",
            {"username": username, "password": password},
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=client_address,
        )

    attacker = Client()
    for _ in range(5):
        via_proxy(attacker, "wrong", "198.51.100.66")
    assert (
        "_auth_user_id"
        not in via_proxy(attacker, "clave-correcta", "198.51.100.66").wsgi_request.session
    )
    # The attacker's own address is what is locked (for another account too)...
    assert (
        "_auth_user_id"
        not in via_proxy(Client(), "clave-de-beto", "198.51.100.66", "beto").wsgi_request.session
    )
    # ...and everyone else comes through the same proxy and is not locked out with the attacker,
    # the account the attacker guessed included.
    assert via_proxy(Client(), "clave-de-beto", "203.0.113.10", "beto").status_code == 302
    assert via_proxy(Client(), "clave-correcta", "203.0.113.11").status_code == 302


@pytest.mark.parametrize("forwarded", ["garbage", "999.1.1.1", "10.0.0.1, not-an-address", " "])
def test_a_malformed_forwarded_address_counts_as_absent(settings, forwarded, record_fault):
    """With TRUST_X_FORWARDED_FOR on, a header no proxy wrote (garbage) is no address: the
    login falls back to the peer's, and answers as for any login (a 500 before)."""
    settings.TRUST_X_FORWARDED_FOR = True
    AgentFactory(username="ana", password="clave-correcta")
    client = Client(raise_request_exception=False)
    for _ in range(5):
        response = client.post(
            "/accounts/login/",
            {"username": "ana", "password": "wrong"},
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=forwarded,
        )
        assert response.status_code == 200
    # Counted against the peer's address, as if the header were not there.
    refused = Client().post(
        "/accounts/login/",
        {"username": "ana", "password": "clave-correcta"},
        REMOTE_ADDR="10.0.0.2",
    )
    assert "_auth_user_id" not in refused.wsgi_request.session
    record_fault(
        "Attack: malformed X-Forwarded-For behind the proxy",
        done=f"5 logins with X-Forwarded-For {forwarded!r}",
        held="200 each (was 500), counted against the peer's address",
        times=5,
    )


def test_without_the_proxy_x_forwarded_for_is_ignored():
    AgentFactory(username="ana", password="clave-correcta")
    AgentFactory(username="beto", password="clave-de-beto")
    client = Client()
    for index in range(5):  # a new made-up address each time does not escape the limit
        client.post(
            "/accounts/login/",
            {"username": "ana", "password": "wrong"},
            REMOTE_ADDR="198.51.100.7",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{index}",
        )
    assert "_auth_user_id" not in login(client, "ana", "clave-correcta").wsgi_request.session
    # The lock is the address's, not only the account's: another account from it is refused too.
    other_account = Client().post(
        "/accounts/login/",
        {"username": "beto", "password": "clave-de-beto"},
        REMOTE_ADDR="198.51.100.7",
        HTTP_X_FORWARDED_FOR="192.0.2.99",
    )
    assert "_auth_user_id" not in other_account.wsgi_request.session


def test_forms_need_a_csrf_token_but_the_signed_webhook_does_not():
    AgentFactory(username="ana", password="clave-correcta")
    strict = Client(enforce_csrf_checks=True)
    assert login(strict, "ana", "clave-correcta").status_code == 403
    assert strict.get("/whatsapp/external").status_code == 403  # bad handshake, not CSRF
    from tests.payloads import signed_post

    assert signed_post(strict, text_from("573001111111", "hola")).status_code == 200


def test_the_admin_is_for_staff_only():
    agent = AgentFactory(username="ana", password="clave-correcta")
    client = Client()
    client.force_login(agent)
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert client.get("/agent/").status_code == 200


def test_the_console_is_for_agents_only():
    client = Client()
    assert client.get("/agent/")["Location"].startswith("/accounts/login/")
    client.force_login(User.objects.create_user("viewer"))
    assert client.get("/agent/").status_code == 403


def test_pages_carry_a_content_security_policy(client):
    AgentFactory(username="ana", password="clave-correcta")
    client.force_login(User.objects.get(username="ana"))
    for path in ["/agent/", "/accounts/login/", "/admin/login/"]:
        policy = client.get(path).headers["Content-Security-Policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
    response = client.get("/agent/")
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_check_deploy_is_clean_with_production_settings():
    env = {
        "PATH": "/usr/bin:/bin",
        "DEBUG": "0",
        "SECRET_KEY": "k2#Qx9!vLz@7mP4$wR8^tN1&yB6*cF3(hJ5)dG0-sA2=eU9+iO7",
        "ALLOWED_HOSTS": "chatbridge.example.com",
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "CHANNELS_REDIS_URL": "redis://127.0.0.1:6379/1",
        "WHATSAPP_APP_SECRET": "s",
        "WHATSAPP_VERIFY_TOKEN": "v",
        "WHATSAPP_TOKEN": "t",
        "WHATSAPP_PHONE_NUMBER_ID": "1",
        "ASSISTANT_APIKEY": "k",
        "WATSON_ASSISTANT_ID": "a",
        "WATSON_ENVIRONMENT_ID": "e",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_logs_keep_no_phone_number_and_no_text_at_info(post_webhook, caplog):
    caplog.set_level(logging.INFO)
    secret_text = "mi clave del banco es 4321"
    post_webhook(text_from("573001234999", secret_text))
    post_webhook(text_from("573001234999", "agente"))
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "573001234999" not in logged
    assert "…4999" in logged  # masked, still useful to operators
    assert secret_text not in logged


def _settings_in_a_new_process(env: dict[str, str], code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", f"import chatbridge.settings as s\n{code}"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("name", "value", "line"),
    [
        ("WATSON_TIMEOUT", "5m", "chatbridge: WATSON_TIMEOUT must be a number, got '5m'"),
        ("WATSON_TIMEOUT", "diez", "chatbridge: WATSON_TIMEOUT must be a number, got 'diez'"),
        (
            "LOGIN_ATTEMPTS_LIMIT",
            "cinco",
            "chatbridge: LOGIN_ATTEMPTS_LIMIT must be a whole number, got 'cinco'",
        ),
    ],
)
def test_a_value_that_is_not_a_number_stops_start_up_with_one_line(name, value, line):
    result = _settings_in_a_new_process({name: value}, "")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [line]


def test_an_empty_variable_takes_its_default_and_values_are_kept_as_written():
    """An unfilled line of .env is no value; a secret may start with `$` and still be itself."""
    result = _settings_in_a_new_process(
        {
            "AUTO_ASSIGN": "",
            "WATSON_TIMEOUT": "  ",
            "LOGIN_ATTEMPTS_LIMIT": "",
            "SECRET_KEY": "$HOME-is-not-read",
            "HOME": "/root",
            "HANDOFF_KEYWORDS": " agente , ,humano ",
        },
        "print(s.AUTO_ASSIGN, s.WATSON_TIMEOUT, s.AXES_FAILURE_LIMIT, s.SECRET_KEY,"
        " s.HANDOFF_KEYWORDS)",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True 10 5 $HOME-is-not-read ['agente', 'humano']"
