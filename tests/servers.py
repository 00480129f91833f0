"""Real processes for the tests: private Redis servers for faults, Daphne and task workers.

Every process listens on 127.0.0.1 on a free port and is stopped by the fixture that started it.
The shared PostgreSQL and Redis of the machine are never stopped.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, *, timeout: float = 20, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


class RedisServer:
    """A throwaway redis-server on its own port, no persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="chatbridge-redis-")
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.dir,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)
        return self

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot exit
            self.process.terminate()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """Still accepting connections (the kernel does), never answering: a hung server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def app_env(**overrides: str) -> dict[str, str]:
    """The environment of a chatbridge process sharing the test database, cache and fakes."""
    db = connection.settings_dict
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",  # the real settings; test password hasher
        DEBUG="1",
        DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        REDIS_URL=settings.CACHES["default"].get("LOCATION", ""),
        CACHE_KEY_PREFIX=settings.CACHES["default"].get("KEY_PREFIX", ""),
        CHANNELS_REDIS_URL=os.environ.get("CHANNELS_REDIS_URL", ""),
        CHANNELS_PREFIX=os.environ.get("CHANNELS_PREFIX", ""),
        WHATSAPP_API_URL=settings.WHATSAPP_API_URL,
        WATSON_TIMEOUT=str(settings.WATSON_TIMEOUT),
        WHATSAPP_RETRY_BACKOFF=str(settings.WHATSAPP_RETRY_BACKOFF),
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


class AppProcess:
    """`python -m daphne` or `python manage.py <command>` as a child process."""

    def __init__(self, args: list[str], env: dict[str, str], port: int | None = None) -> None:
        self.args, self.env, self.port = args, env, port
        # The child writes this file while the test runs; it is read after the child stops.
        self.log = tempfile.NamedTemporaryFile(prefix="cb-", suffix=".log", delete=False)  # noqa: SIM115
        self.process: subprocess.Popen | None = None

    @classmethod
    def daphne(cls, **env: str) -> "AppProcess":
        port = free_port()
        args = [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "chatbridge.asgi:application",
        ]
        return cls(args, app_env(**env), port)

    @classmethod
    def manage(cls, *command: str, **env: str) -> "AppProcess":
        return cls([sys.executable, "manage.py", *command], app_env(**env))

    @classmethod
    def worker(cls, **env: str) -> "AppProcess":
        """A database-backend task worker (no autoreloader: a SIGKILL must kill the worker)."""
        args = ["db_worker", "--interval", "0.05", "--no-startup-delay", "--no-reload"]
        return cls.manage(*args, **{"TASKS_BACKEND": "database", **env})

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "AppProcess":
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        if self.port:
            wait_for_port(self.port, process=self.process)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no goodbye, as a crash would."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")


def wait_until(predicate, *, timeout: float = 10, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def post_signed(url: str, payload: dict, *, timeout: float = 30) -> requests.Response:
    import json

    from tests.payloads import sign

    body = json.dumps(payload).encode()
    return requests.post(
        f"{url}/whatsapp/external",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body)},
        timeout=timeout,
    )
