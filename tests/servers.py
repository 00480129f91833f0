"""Real processes for the tests: private Redis servers for faults, Daphne and task workers.

Every process listens on 127.0.0.1 on a free port and is stopped by the fixture that started it.
The shared PostgreSQL and Redis of the machine are never stopped.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable
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


def database_url(port: int | None = None) -> str:
    """The test database's URL, optionally through another port (a TcpProxy)."""
    db = connection.settings_dict
    return f"postgres://{db['USER']}@{db['HOST']}:{port or db['PORT']}/{db['NAME']}"


def app_env(**overrides: str) -> dict[str, str]:
    """The environment of a chatbridge process sharing the test database, cache and fakes."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "PYTEST_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",  # the real settings; test password hasher
        DEBUG="1",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.CACHES["default"].get("LOCATION", ""),
        CACHE_KEY_PREFIX=settings.CACHES["default"].get("KEY_PREFIX", ""),
        CHANNELS_REDIS_URL=os.environ.get("CHANNELS_REDIS_URL", ""),
        CHANNELS_PREFIX=os.environ.get("CHANNELS_PREFIX", ""),
        WHATSAPP_API_URL=settings.WHATSAPP_API_URL,
        TWILIO_API_URL=settings.TWILIO_API_URL,
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
    def gunicorn(cls, **env: str) -> "AppProcess":
        """HTTP as deployed: gunicorn with deploy/gunicorn.conf.py (websockets stay on Daphne)."""
        port = free_port()
        args = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py"]
        args += ["chatbridge.wsgi:application"]
        return cls(args, app_env(GUNICORN_BIND=f"127.0.0.1:{port}", **env), port)

    @classmethod
    def turn_worker(cls, threads: int = 4, poll: float = 1.0, **env: str) -> "AppProcess":
        args = ["turn_worker", "--threads", str(threads), "--poll", str(poll)]
        return cls.manage(*args, **{"TASKS_BACKEND": "database", **env})

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


def stop_all(processes: Iterable["AppProcess"]) -> None:
    """SIGTERM to every process at once, then wait for each (SIGKILL after 10 s): side by side,
    as their graceful shutdowns take about a second each."""
    running = [p for p in processes if p.process and p.process.poll() is None]
    for process in running:
        process.process.terminate()
    deadline = time.monotonic() + 10
    for process in running:
        try:
            process.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def start_all(processes: list["AppProcess"]) -> list["AppProcess"]:
    """Start the processes side by side (each waits for its port), then return them."""
    threads = [threading.Thread(target=process.start) for process in processes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return processes


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


class TcpProxy:
    """A TCP relay to a real server, that a test can cut (the server becomes unreachable: new
    connections refused, open ones dropped) and restore on the same port. It makes an outage of
    the machine's PostgreSQL for one process without touching PostgreSQL itself."""

    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> "TcpProxy":
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                # shutdown() wakes the accept() blocked on another thread; close() alone does not,
                # and that accept() would still take one more connection.
                with contextlib.suppress(OSError):
                    self._listener.shutdown(socket.SHUT_RDWR)
                self._listener.close()
                self._listener = None
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self._sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut while this one was being connected
                    client.close()
                    server.close()
                    return
                self._sockets.update((client, server))
            for source, target in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
