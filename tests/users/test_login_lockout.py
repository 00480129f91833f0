"""The login lockout as the person at the login page meets it (django-axes, counted in PostgreSQL):
the message, the per-username count, the window, and the day of failures kept for audit."""

import datetime as dt
import subprocess
import sys

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.core.cache import cache
from django.db.models import F
from django.test import Client
from django.utils import timezone

from tests.factories import AgentFactory
from tests.servers import ROOT
from users.services import login_failures_prune

pytestmark = pytest.mark.django_db(transaction=True)

LOCKOUT_MESSAGE = "Demasiados intentos fallidos. Espera 15 minutos o pide ayuda a un supervisor."
# The admin is in English, its login's lockout page too.
ADMIN_LOCKOUT_MESSAGE = "Too many failed attempts. Wait 15 minutes or ask a supervisor for help."
WRONG_PASSWORD_MESSAGE = "Usuario o contraseña incorrectos."


def login(
    client: Client,
    username: str,
    password: str,
    ip: str = "198.51.100.7",
    url: str = "/accounts/login/",
):
    return client.post(url, {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_a_locked_out_person_reads_why_and_for_how_long_on_the_login_page():
    AgentFactory(username="ana", password="clave-correcta")
    client = Client()
    for _ in range(4):
        page = login(client, "ana", "wrong").content.decode()
        assert WRONG_PASSWORD_MESSAGE in page
        assert LOCKOUT_MESSAGE not in page
    fifth = login(client, "ana", "wrong")
    assert fifth.status_code == 200
    page = fifth.content.decode()
    assert LOCKOUT_MESSAGE in page  # the fifth failure locks, and says so at once
    assert WRONG_PASSWORD_MESSAGE not in page
    assert 'name="username"' in page and 'name="password"' in page  # the form, to try later
    # The right password now gets the same page, on the console's login and on the admin's.
    assert LOCKOUT_MESSAGE in login(client, "ana", "clave-correcta").content.decode()
    admin = login(Client(), "ana", "clave-correcta", url="/admin/login/")
    assert admin.status_code == 200
    assert ADMIN_LOCKOUT_MESSAGE in admin.content.decode()
    assert "_auth_user_id" not in admin.wsgi_request.session


def test_failures_for_one_username_never_lock_it_out_from_other_addresses(record_fault):
    """Lockout is no weapon: twenty wrong passwords for ana from one address lock that address,
    never ana herself (a lock by username alone let anyone lock every agent out at shift start)."""
    AgentFactory(username="ana", password="clave-correcta")
    attacker = Client()
    for _ in range(20):
        login(attacker, "ana", "wrong", ip="198.51.100.66")
    refused = login(attacker, "ana", "clave-correcta", ip="198.51.100.66")
    assert LOCKOUT_MESSAGE in refused.content.decode()
    assert login(Client(), "ana", "clave-correcta", ip="203.0.113.9").status_code == 302
    admin = login(Client(), "ana", "clave-correcta", ip="203.0.113.10", url="/admin/login/")
    assert ADMIN_LOCKOUT_MESSAGE not in admin.content.decode()
    # Spread over five addresses, one failure each, nothing is locked at all.
    for index in range(5):
        login(Client(), "ana", "wrong", ip=f"198.51.100.{index + 10}")
    assert login(Client(), "ana", "clave-correcta", ip="198.51.100.10").status_code == 302
    record_fault(
        "Attack: lockout as a weapon",
        done="20 wrong passwords for one agent from one address; 5 more from 5 addresses",
        held="that address locked; the agent logs in from others (console and admin)",
        times=25,
    )


def test_the_count_lives_in_postgresql_and_lifts_after_the_window():
    AgentFactory(username="ana", password="clave-correcta")
    for _ in range(5):
        login(Client(), "ana", "wrong")
    assert (
        AccessAttempt.objects.get(ip_address="198.51.100.7", username="ana").failures_since_start
        == 5
    )
    # Redis losing everything does not lift the lock.
    cache.delete_pattern("*")
    assert "_auth_user_id" not in login(Client(), "ana", "clave-correcta").wsgi_request.session
    # Fifteen minutes after the last failure the same address and account may log in again.
    AccessAttempt.objects.update(
        attempt_time=F("attempt_time") - dt.timedelta(minutes=15, seconds=1)
    )
    assert login(Client(), "ana", "clave-correcta").status_code == 302


def test_failed_logins_are_kept_a_day_for_audit():
    AgentFactory(username="ana", password="clave-correcta")
    for _ in range(2):
        login(Client(), "ana", "wrong")
    assert AccessFailureLog.objects.filter(username="ana", ip_address="198.51.100.7").count() == 2
    old = AccessFailureLog.objects.earliest("attempt_time")
    AccessFailureLog.objects.filter(pk=old.pk).update(
        attempt_time=timezone.now() - dt.timedelta(days=1, minutes=1)
    )
    assert login_failures_prune() == 1
    assert AccessFailureLog.objects.count() == 1


def test_the_environment_sets_the_limit_and_the_window():
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import chatbridge.settings as s; print(s.AXES_FAILURE_LIMIT, s.AXES_COOLOFF_TIME)",
        ],
        cwd=ROOT,
        env={
            "PATH": "/usr/bin:/bin",
            "DEBUG": "1",
            "LOGIN_ATTEMPTS_LIMIT": "3",
            "LOGIN_ATTEMPTS_WINDOW_MINUTES": "30",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3 0:30:00"
