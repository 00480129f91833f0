"""The shipped proxy configuration (deploy/), run for real: Debian's nginx (unpacked by the
Makefile into var/nginx) in front of gunicorn with production settings, in both shapes. nginx
behind a TLS proxy (deploy/nginx.conf) and nginx terminating TLS (deploy/nginx-tls.conf)."""

import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from django.conf import settings

from tests.factories import AgentFactory
from tests.payloads import sign, text_from
from tests.servers import ROOT, AppProcess, free_port, wait_for_port

pytestmark = pytest.mark.django_db(transaction=True)

NGINX = ROOT / "var" / "nginx" / "usr" / "sbin" / "nginx"
VERIFY_TOKEN = "verify-token-never-logged"
METRICS_TOKEN = "scrape-token"


@pytest.fixture
def production_web(fake_vendors) -> Iterator[AppProcess]:
    """gunicorn with DEBUG off and SECURE_SSL_REDIRECT on, as deployed behind the proxy."""
    process = AppProcess.gunicorn(
        DEBUG="0",
        SECRET_KEY="k2#Qx9!vLz@7mP4$wR8^tN1&yB6*cF3(hJ5)dG0-sA2=eU9+iO7",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="1",
        TRUST_X_FORWARDED_FOR="1",
        CHANNELS_REDIS_URL=settings.CACHES["default"]["LOCATION"],
        WHATSAPP_APP_SECRET=settings.WHATSAPP_APP_SECRET,
        WHATSAPP_VERIFY_TOKEN=VERIFY_TOKEN,
        WHATSAPP_TOKEN=settings.WHATSAPP_TOKEN,
        WHATSAPP_PHONE_NUMBER_ID=settings.WHATSAPP_PHONE_NUMBER_ID,
        ASSISTANT_APIKEY="k",
        WATSON_ASSISTANT_ID="a",
        WATSON_ENVIRONMENT_ID="e",
        METRICS_TOKEN=METRICS_TOKEN,
    ).start()
    yield process
    process.stop()


class Nginx:
    """One of deploy/'s shapes in a private prefix, its upstreams pointed at `web`."""

    def __init__(self, shape: str, web: AppProcess) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="cb-nginx-"))
        self.http_port, self.https_port = free_port(), free_port()
        self.access_log = self.dir / "access.log"
        self.cert = self.dir / "tls" / "fullchain.pem"
        for source in (ROOT / "deploy" / "nginx").glob("*.conf"):
            self._copy(source, source.name, web)
        self._copy(ROOT / "deploy" / shape, "site.conf", web)
        if shape == "nginx-tls.conf":
            (self.dir / "tls").mkdir()
            openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
            subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
            files = ["-keyout", str(self.dir / "tls" / "privkey.pem"), "-out", str(self.cert)]
            subprocess.run([*openssl, *subject, *files], check=True, capture_output=True)
        temp = {name: self.dir / name for name in ("body", "proxy", "fcgi", "uwsgi", "scgi")}
        # nginx's workers (not root) spool large bodies there: an agent's attachment.
        self.dir.chmod(0o755)
        for folder in temp.values():
            folder.mkdir(mode=0o777)
            folder.chmod(0o777)
        (self.dir / "main.conf").write_text(
            f"daemon off;\nworker_processes 1;\npid {self.dir}/nginx.pid;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"  client_body_temp_path {temp['body']};\n  proxy_temp_path {temp['proxy']};\n"
            f"  fastcgi_temp_path {temp['fcgi']};\n  uwsgi_temp_path {temp['uwsgi']};\n"
            f"  scgi_temp_path {temp['scgi']};\n"
            f"  include {self.dir}/site.conf;\n"
            "}\n"
        )
        self.process: subprocess.Popen | None = None

    def _copy(self, source: Path, name: str, web: AppProcess) -> None:
        text = source.read_text()
        text = text.replace("/etc/nginx/tls/", f"{self.dir}/tls/")
        text = text.replace("/etc/nginx/", f"{self.dir}/")
        text = text.replace("/var/log/nginx/access.log", str(self.access_log))
        for upstream in ("web1:8000", "web2:8000", "ws1:8001", "ws2:8001"):
            text = text.replace(upstream, f"127.0.0.1:{web.port}")
        text = text.replace("listen 80;", f"listen 127.0.0.1:{self.http_port};")
        text = text.replace("listen 443 ", f"listen 127.0.0.1:{self.https_port} ")
        (self.dir / name).write_text(text)

    def start(self) -> "Nginx":
        self.process = subprocess.Popen(
            [str(NGINX), "-p", str(self.dir), "-c", str(self.dir / "main.conf"), "-e", "stderr"],
            stdout=subprocess.DEVNULL,
            stderr=(self.dir / "error.log").open("w"),
        )
        try:
            wait_for_port(self.http_port, process=self.process)
        except RuntimeError as error:
            raise RuntimeError((self.dir / "error.log").read_text()) from error
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def behind_proxy(production_web) -> Iterator[Nginx]:
    nginx = Nginx("nginx.conf", production_web).start()
    yield nginx
    nginx.stop()


@pytest.fixture
def terminating_tls(production_web) -> Iterator[Nginx]:
    nginx = Nginx("nginx-tls.conf", production_web).start()
    yield nginx
    nginx.stop()


def _webhook(url: str, verify: Path | bool = True, **headers: str) -> requests.Response:
    body = json.dumps(text_from("573009990001", "hola")).encode()
    return requests.post(
        f"{url}/whatsapp/external",
        data=body,
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": sign(body), **headers},
        allow_redirects=False,
        verify=str(verify) if isinstance(verify, Path) else verify,
        timeout=30,
    )


def test_behind_a_tls_proxy_the_signed_webhook_is_answered_not_redirected(
    behind_proxy, record_fault
):
    """nginx overwrote the outer proxy's X-Forwarded-Proto with its own `http`, and chatbridge
    (SECURE_SSL_REDIRECT) answered Meta with a 301."""
    assert _webhook(behind_proxy.url, **{"X-Forwarded-Proto": "https"}).status_code == 200
    # Reached over plain HTTP with no proxy saying otherwise: sent to https, as it should be.
    plain = _webhook(behind_proxy.url)
    assert plain.status_code == 301
    assert plain.headers["Location"].startswith("https://")
    record_fault(
        "Real nginx behind a TLS proxy, SECURE_SSL_REDIRECT on",
        done="signed webhook with the outer proxy's X-Forwarded-Proto: https, and without it",
        held="200 (was 301 to https); plain HTTP with no proxy still redirected",
    )


def test_terminating_tls_the_webhook_is_answered_whatever_the_client_claims(
    terminating_tls, record_fault
):
    tls = terminating_tls
    assert _webhook(tls.https_url, tls.cert).status_code == 200
    assert _webhook(tls.https_url, tls.cert, **{"X-Forwarded-Proto": "http"}).status_code == 200
    plain = requests.get(f"{terminating_tls.url}/agent/", allow_redirects=False, timeout=10)
    assert plain.status_code == 301
    assert plain.headers["Location"] == "https://127.0.0.1/agent/"
    record_fault(
        "Real nginx terminating TLS, SECURE_SSL_REDIRECT on",
        done="signed webhook over https, also with a client's X-Forwarded-Proto: http",
        held="200; plain HTTP redirected to https by nginx",
    )


def _login(nginx: Nginx, client_address: str, password: str) -> int:
    """The console's login through the proxy, as a client at `client_address` behind the bank's
    TLS proxy (which says so in X-Forwarded-For and X-Forwarded-Proto)."""
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": client_address}
    page = requests.get(f"{nginx.url}/accounts/login/", headers=headers, timeout=10)
    token = page.cookies["csrftoken"]
    return requests.post(
        f"{nginx.url}/accounts/login/",
        data={"username": "ana", "password": password, "csrfmiddlewaretoken": token},
        headers={
            **headers,
            "Cookie": f"csrftoken={token}",
            "Referer": "https://127.0.0.1/accounts/login/",
        },
        allow_redirects=False,
        timeout=10,
    ).status_code


def test_behind_a_tls_proxy_logins_count_per_client_not_per_proxy(behind_proxy, record_fault):
    """nginx wrote the outer proxy's own address into X-Forwarded-For: every login counted
    against that one address, and five typos anywhere locked every agent out."""
    AgentFactory(username="ana", password="clave-correcta")
    for _ in range(5):
        assert _login(behind_proxy, "198.51.100.7", "wrong") == 200
    assert _login(behind_proxy, "198.51.100.7", "clave-correcta") == 200  # locked out
    assert _login(behind_proxy, "203.0.113.5", "clave-correcta") == 302  # someone else is not
    record_fault(
        "Real nginx behind a TLS proxy: the login lockout's address",
        done="5 wrong passwords from one client behind the proxy, then another client",
        held="the first client locked out; the other logs in (was: the proxy's address locked)",
        times=7,
    )


def test_the_access_log_never_holds_the_verify_token(behind_proxy, record_fault):
    response = requests.get(
        f"{behind_proxy.url}/whatsapp/external",
        params={"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"},
        headers={"X-Forwarded-Proto": "https"},
        timeout=10,
    )
    assert (response.status_code, response.text) == (200, "42")
    deadline = time.monotonic() + 5
    while "/whatsapp/external" not in behind_proxy.access_log.read_text():
        assert time.monotonic() < deadline, "nothing logged"
        time.sleep(0.05)
    logged = behind_proxy.access_log.read_text()
    assert VERIFY_TOKEN not in logged
    assert "hub.verify_token" not in logged
    record_fault(
        "nginx access log and the webhook handshake",
        done="Meta's handshake GET with hub.verify_token",
        held="answered; the log has the path, never the query",
    )


@pytest.mark.parametrize("path", ["/metrics", "/cache/stats"])
def test_metrics_are_not_public_through_the_proxy(behind_proxy, production_web, path, record_fault):
    https = {"X-Forwarded-Proto": "https"}
    assert requests.get(f"{behind_proxy.url}{path}", headers=https, timeout=10).status_code == 404
    wrong = {**https, "Authorization": "Bearer guess"}
    assert requests.get(f"{behind_proxy.url}{path}", headers=wrong, timeout=10).status_code == 401
    right = {**https, "Authorization": f"Bearer {METRICS_TOKEN}"}
    assert requests.get(f"{behind_proxy.url}{path}", headers=right, timeout=10).status_code == 200
    record_fault(
        f"Attack: {path} from outside, through nginx",
        done="no token, a wrong token, the right one",
        held="404, 401, 200 (was public)",
        times=3,
    )


def test_slow_bodies_do_not_reach_gunicorn(behind_proxy, record_fault):
    """gunicorn's two sync workers were taken by two connections sending their bodies slowly;
    nginx reads each body whole before passing it on."""
    slow = []
    for _ in range(4):
        client = socket.create_connection(("127.0.0.1", behind_proxy.http_port))
        client.sendall(
            b"POST /whatsapp/external HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
        )
        slow.append(client)
    try:
        started = time.monotonic()
        healthy = requests.get(f"{behind_proxy.url}/healthz", timeout=10)
        assert healthy.status_code == 200
        waited = time.monotonic() - started
        assert waited < 5
        record_fault(
            "Attack: slow request bodies (slowloris) through nginx",
            done="4 connections sending a body's first byte only, then a request",
            held="answered: gunicorn's 2 sync workers never see an unfinished body",
            figures=f"answered in {waited * 1000:.0f} ms",
        )
    finally:
        for client in slow:
            client.close()


def test_an_agents_attachment_gets_through_where_a_large_webhook_does_not(behind_proxy):
    """WhatsApp carries documents up to 100 MB: nginx lets them through on the upload path only
    (chatbridge checks each type's limit and the agent's session there); 4 MB elsewhere."""
    https = {"X-Forwarded-Proto": "https"}
    big = b"x" * (20 * 1024 * 1024)
    upload = requests.post(
        f"{behind_proxy.url}/agent/rooms/1/files",
        data=big,
        headers=https,
        allow_redirects=False,
        timeout=60,
    )
    errors = (behind_proxy.dir / "error.log").read_text()
    # Reached chatbridge, whose CSRF check refuses a form from nowhere (in LANGUAGE_CODE's Spanish:
    # the request names no language).
    assert upload.status_code == 403, errors[-500:]
    assert "La verificación CSRF ha fallado" in upload.text
    hook = requests.post(
        f"{behind_proxy.url}/whatsapp/external", data=big, headers=https, timeout=60
    )
    assert hook.status_code == 413
