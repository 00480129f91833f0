"""Which language a page speaks: the console and its login in the agent's (the language
selector's cookie, else the browser's, else LANGUAGE_CODE), the admin always in English, and the
console's JavaScript catalog holding chatbridge's strings only."""

import pytest
from django.contrib.auth.models import User

from tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def agent(client) -> User:
    agent = AgentFactory(username="ana")
    client.force_login(agent)
    return agent


@pytest.mark.parametrize(
    ("accept_language", "selected", "language", "heading"),
    [
        ("", None, "es", "En cola"),
        ("en-US,en;q=0.9", None, "en", "In the queue"),
        ("es-CO,es;q=0.9", None, "es", "En cola"),
        ("de-DE,de;q=0.9", None, "es", "En cola"),  # a language we do not speak: LANGUAGE_CODE
        ("en-US,en;q=0.9", "es", "es", "En cola"),  # the selector's cookie wins
    ],
)
def test_the_console_speaks_the_agents_language(
    client, agent, accept_language, selected, language, heading
):
    if selected:
        client.cookies["django_language"] = selected
    headers = {"Accept-Language": accept_language} if accept_language else {}
    page = client.get("/agent/", headers=headers)
    html = page.content.decode()
    assert f'<html lang="{language}">' in html
    assert heading in html
    assert page["Content-Language"] == language
    assert f'<option value="{language}" lang="{language}" selected>' in html


def test_the_language_selector_keeps_the_choice_and_returns_to_the_console(client, agent):
    chosen = client.post("/i18n/setlang/", {"language": "en", "next": "/agent/"})
    assert (chosen.status_code, chosen["Location"]) == (302, "/agent/")
    assert client.cookies["django_language"].value == "en"
    page = client.get("/agent/", headers={"Accept-Language": "es"}).content.decode()
    assert "In the queue" in page


def test_the_login_page_speaks_the_browsers_language(client):
    english = client.get("/accounts/login/", headers={"Accept-Language": "en"}).content.decode()
    spanish = client.get("/accounts/login/").content.decode()
    assert ">Sign in</button>" in english
    assert ">Ingresar</button>" in spanish


@pytest.mark.parametrize("accept_language", ["es-ES,es;q=0.9", "en-US,en;q=0.9"])
def test_the_admin_stays_in_english(client, accept_language):
    login = client.get("/admin/login/", headers={"Accept-Language": accept_language})
    assert login["Content-Language"] == "en"
    assert 'value="Log in"' in login.content.decode()
    client.force_login(User.objects.create_superuser("operator", "op@example.com", "secret"))
    index = client.get("/admin/", headers={"Accept-Language": accept_language})
    assert index["Content-Language"] == "en"
    assert '<html lang="en"' in index.content.decode()


def test_the_javascript_catalog_holds_the_consoles_strings_only(client):
    spanish = client.get("/jsi18n/", headers={"Accept-Language": "es"}).content.decode()
    english = client.get("/jsi18n/", headers={"Accept-Language": "en"}).content.decode()
    assert '"Take": "Tomar"' in spanish
    assert "Tomar" not in english  # English is the source: nothing to translate
    # The admin's own JavaScript strings ("Today": "Hoy") are not the console's to load.
    assert "Hoy" not in spanish
