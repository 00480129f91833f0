"""Vendor sessions skip requests' per-call environment scan only when no proxy is configured."""

from chatbridge.http import vendor_session


def test_no_proxy_variables_no_environment_lookups(monkeypatch):
    for scheme in ("http", "https", "all"):
        monkeypatch.delenv(f"{scheme}_proxy", raising=False)
        monkeypatch.delenv(f"{scheme.upper()}_PROXY", raising=False)
    assert vendor_session().trust_env is False


def test_a_configured_proxy_is_still_honoured(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.bank.internal:3128")
    monkeypatch.setenv("NO_PROXY", "watson.internal")
    assert vendor_session().trust_env is True  # requests reads both, per call, as before
