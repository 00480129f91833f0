"""Watson Assistant v2 through the official ibm-watson SDK: pure HTTP, no ORM, no cache.

The SDK reads ASSISTANT_URL and the ASSISTANT_* credentials from the environment itself. Its
automatic retries stay off: it retries POST /message on 5xx and timeouts, which can advance a
conversation twice. chatbridge retries only what is safe (an expired session, once).
"""

import logging
from functools import cache
from typing import Any

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from ibm_cloud_sdk_core import ApiException
from ibm_cloud_sdk_core.authenticators import NoAuthAuthenticator
from ibm_cloud_sdk_core.get_authenticator import get_authenticator_from_environment
from ibm_watson import AssistantV2

from chatbridge.http import (
    VendorError,
    VendorTimeout,
    VendorUnavailable,
    skip_environment_lookups,
)

logger = logging.getLogger("chatbridge.watson")

# Watson rejects input text longer than this.
INPUT_TEXT_MAX = 2048


class WatsonError(VendorError):
    pass


class WatsonSessionExpired(WatsonError):
    """Watson no longer knows the session (404 "Invalid Session"): make a new one."""


class WatsonClient:
    def __init__(
        self,
        *,
        assistant_id: str,
        environment_id: str,
        version: str,
        timeout: float,
        allow_no_auth: bool,
    ) -> None:
        authenticator = get_authenticator_from_environment("assistant")
        if authenticator is None:
            if not allow_no_auth:
                raise ImproperlyConfigured(
                    "Watson credentials missing: set ASSISTANT_APIKEY (or ASSISTANT_AUTH_TYPE)"
                )
            authenticator = NoAuthAuthenticator()
        self.sdk = AssistantV2(version=version, authenticator=authenticator)
        self.sdk.disable_retries()
        self.sdk.set_http_config({"timeout": (min(timeout, 3.0), timeout)})
        skip_environment_lookups(self.sdk.http_client)
        self.assistant_id = assistant_id
        self.environment_id = environment_id

    def session_create(self) -> str:
        result = self._call(self.sdk.create_session, self.assistant_id, self.environment_id)
        return str(result["session_id"])

    def session_delete(self, *, session_id: str) -> None:
        self._call(self.sdk.delete_session, self.assistant_id, self.environment_id, session_id)

    def message_send(self, *, session_id: str, text: str, user_id: str) -> dict[str, Any]:
        """One stateful turn; returns the response's `output` (with `generic` always a list)."""
        result = self._call(
            self.sdk.message,
            self.assistant_id,
            self.environment_id,
            session_id,
            input={"message_type": "text", "text": sanitize_input(text)},
            user_id=user_id,
        )
        output = result.get("output") if isinstance(result, dict) else None
        if not isinstance(output, dict):
            raise WatsonError("response without output")
        if not isinstance(output.get("generic"), list):
            output["generic"] = []
        return output

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs).get_result()
        except ApiException as error:
            if error.status_code == 404 and "invalid session" in (error.message or "").lower():
                raise WatsonSessionExpired("session expired", status=404) from error
            raise WatsonError(
                f"HTTP {error.status_code}: {error.message}", status=error.status_code
            ) from error
        except requests.ConnectTimeout as error:
            raise VendorUnavailable(f"watson connect timeout: {error}") from error
        except requests.Timeout as error:
            raise VendorTimeout("watson timeout") from error
        except requests.RequestException as error:
            raise VendorUnavailable(f"watson unreachable: {error}") from error


def sanitize_input(text: str) -> str:
    """What Watson accepts: no CR, LF or tab (the API refuses them), no other control characters,
    at most 2048 characters."""
    cleaned = "".join(
        " " if char in "\r\n\t" else char
        for char in text
        if char in "\r\n\t" or (ord(char) >= 32 and not 0x7F <= ord(char) < 0xA0)
    )
    return " ".join(cleaned.split())[:INPUT_TEXT_MAX]


@cache
def watson_client(assistant: tuple[str, str] | None = None) -> WatsonClient:
    """The client of one assistant: (assistant id, environment id), WATSON_ASSISTANT_ID's and
    WATSON_ENVIRONMENT_ID's when None (a business number may have its own: rooms/lines.py)."""
    assistant_id, environment_id = assistant or (
        settings.WATSON_ASSISTANT_ID,
        settings.WATSON_ENVIRONMENT_ID,
    )
    return WatsonClient(
        assistant_id=assistant_id,
        environment_id=environment_id,
        version=settings.WATSON_VERSION,
        timeout=settings.WATSON_TIMEOUT,
        allow_no_auth=settings.DEBUG,
    )
