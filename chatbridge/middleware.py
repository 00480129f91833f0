from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.middleware.locale import LocaleMiddleware
from django.urls import reverse
from django.utils import translation

# The admin's labels, our model names and our admin code are English: half-translated, it would
# read worse than it does in English.
ADMIN_LANGUAGE = "en"


class ContentSecurityPolicyMiddleware:
    """Django 5.2 has no CSP of its own (6.0 adds one): one header, the same everywhere."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", settings.CONTENT_SECURITY_POLICY)
        return response


class AdminInEnglishLocaleMiddleware(LocaleMiddleware):
    """Django's LocaleMiddleware (the language cookie, else Accept-Language, else LANGUAGE_CODE),
    except under the admin, which is always in English."""

    def process_request(self, request: HttpRequest) -> None:
        if request.path.startswith(reverse("admin:index")):
            translation.activate(ADMIN_LANGUAGE)
            request.LANGUAGE_CODE = translation.get_language()
            return
        super().process_request(request)
