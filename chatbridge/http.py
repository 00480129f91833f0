"""Outgoing HTTP: one pooled session per vendor, explicit timeouts, typed errors."""

import os
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError


class VendorError(Exception):
    """A vendor call failed. `retryable` says whether the same call may succeed later."""

    retryable = False
    # The vendor's own error code (Meta's 131047, Twilio's 63016), when it gave one.
    code: int | None = None

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MediaTooLarge(VendorError):
    """A file larger than the caller accepts (or than the provider carries for its kind)."""


class VendorTimeout(VendorError):
    # The request may have been processed: retrying a send could deliver it twice.
    retryable = False


class VendorUnavailable(VendorError):
    # Nothing reached the vendor: the connection could not be opened.
    retryable = True


class VendorConnectionLost(VendorError):
    # The connection dropped after the request went out: like a timeout, it may have been done.
    retryable = False


def vendor_session(*, pool_size: int = 20) -> requests.Session:
    """A keep-alive session; no automatic retries, so the caller decides what is safe to repeat."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    skip_environment_lookups(session)
    return session


# The variables requests reads per call besides the proxies: a CA bundle for a vendor behind a
# private certificate authority (an on-premises Watson, a TLS-inspecting gateway).
_CA_BUNDLE_VARIABLES = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")


def skip_environment_lookups(session: requests.Session) -> None:
    """Without proxy or CA-bundle variables in the environment, stop requests from rescanning the
    environment and ~/.netrc on every call (a few per cent of a turn's CPU, docs/BENCHMARKS.md).
    With any of them set, requests keeps its own handling, NO_PROXY included. (~/.netrc is then
    not consulted: every vendor call here carries its own credentials.)"""
    if not urllib.request.getproxies() and not any(map(os.environ.get, _CA_BUNDLE_VARIABLES)):
        session.trust_env = False


def post_json(
    session: requests.Session,
    url: str,
    *,
    json: dict,
    headers: dict[str, str],
    timeout: float,
) -> requests.Response:
    return vendor_request(session, "POST", url, json=json, headers=headers, timeout=timeout)


def vendor_request(
    session: requests.Session, method: str, url: str, *, timeout: float, **kwargs: Any
) -> requests.Response:
    """Any call to a vendor, with its errors typed. `timeout` is the read timeout; connecting
    gets at most 3 s of it."""
    with vendor_errors(timeout):
        return session.request(method, url, timeout=(min(timeout, 3.0), timeout), **kwargs)


def post_form(
    session: requests.Session,
    url: str,
    *,
    data: dict[str, str],
    auth: tuple[str, str],
    timeout: float,
) -> requests.Response:
    return vendor_request(session, "POST", url, data=data, auth=auth, timeout=timeout)


def get_streamed(
    session: requests.Session, url: str, *, auth: tuple[str, str], timeout: float
) -> requests.Response:
    """A GET whose body the caller reads in chunks (inside `vendor_errors` too), following
    redirects; requests drops the credentials when a redirect leaves the host."""
    return vendor_request(session, "GET", url, auth=auth, stream=True, timeout=timeout)


def read_at_most(response: requests.Response, max_bytes: int) -> bytes:
    """A streamed body, refused (MediaTooLarge) as soon as it passes `max_bytes`; a body cut off
    on the way is VendorConnectionLost."""
    chunks, size = [], 0
    try:
        for chunk in response.iter_content(chunk_size=64 * 1024):
            size += len(chunk)
            if size > max_bytes:
                raise MediaTooLarge(f"more than {max_bytes} bytes")
            chunks.append(chunk)
    except requests.RequestException as error:
        raise VendorConnectionLost(f"download cut off: {error}") from error
    return b"".join(chunks)


@contextmanager
def vendor_errors(timeout: float) -> Iterator[None]:
    """requests' failures as the typed errors above."""
    try:
        yield
    except requests.ConnectTimeout as error:
        raise VendorUnavailable(f"connect timeout: {error}") from error
    except requests.Timeout as error:
        raise VendorTimeout(f"timeout after {timeout}s") from error
    except requests.ConnectionError as error:
        reason = getattr(error.args[0], "reason", None) if error.args else None
        if isinstance(reason, NewConnectionError):
            raise VendorUnavailable(f"cannot connect: {reason}") from error
        raise VendorConnectionLost(f"connection lost: {error}") from error
