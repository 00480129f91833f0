"""Which language a page speaks: the console's login in the agent's (the language selector's
cookie, else the browser's, else LANGUAGE_CODE), the admin always in English."""

import pytest
from django.contrib.auth.models import User

pytestmark = pytest.mark.django_db


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
