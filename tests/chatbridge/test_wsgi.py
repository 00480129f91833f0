"""chatbridge/wsgi.py stays usable: HTTP may move to a WSGI server after measurement."""

import io

import pytest

from chatbridge.wsgi import application


@pytest.mark.django_db
def test_wsgi_application_answers_the_handshake():
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/whatsapp/external",
        "QUERY_STRING": (
            "hub.mode=subscribe&hub.verify_token=development-verify-token&hub.challenge=42"
        ),
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": io.StringIO(),
    }
    statuses: list[str] = []
    body = b"".join(application(environ, lambda status, headers: statuses.append(status)))
    assert statuses == ["200 OK"]
    assert body == b"42"
