"""The fake Twilio honours the Messages API's contract over real HTTP: basic auth, forms in,
201 with the sid out, errors in Twilio's shape, media behind auth and a redirect."""

import requests

from chatbridge.fakes import FakeTwilio

FORM = {"From": "whatsapp:+14155238886", "To": "whatsapp:+573001112233", "Body": "¡Hola!"}


def _messages_url(twilio: FakeTwilio) -> str:
    return f"{twilio.url}/2010-04-01/Accounts/{twilio.account_sid}/Messages.json"


def _post(twilio: FakeTwilio, form: dict[str, str], auth: tuple[str, str] | None = None):
    auth = auth or (twilio.account_sid, twilio.auth_token)
    return requests.post(_messages_url(twilio), data=form, auth=auth, timeout=5)


def test_a_send_without_the_accounts_credentials_is_401(twilio):
    refused = _post(twilio, FORM, auth=(twilio.account_sid, "wrong"))
    assert refused.status_code == 401
    assert refused.json()["code"] == 20003
    assert twilio.sent == []


def test_a_send_is_answered_with_its_sid_and_listed_as_the_customer_reads_it(twilio):
    first = _post(twilio, FORM)
    _post(twilio, {**FORM, "To": "whatsapp:+573009990000", "Body": "otro"})
    _post(twilio, {**FORM, "Body": "", "MediaUrl": "https://example.com/a.jpg"})

    assert first.status_code == 201
    assert first.json()["sid"].startswith("SM")
    listed = requests.get(
        f"{twilio.url}/_fake/messages", params={"to": "573001112233", "after": 0}, timeout=5
    ).json()["messages"]
    assert [(m["seq"], m["text"]) for m in listed] == [
        (1, "¡Hola!"),
        (3, "[media https://example.com/a.jpg]"),
    ]


def test_twilio_errors_are_scripted_in_twilios_shape(twilio):
    requests.post(f"{twilio.url}/_fake/control", json={"fail": {"code": 63016}}, timeout=5)
    failed, sent = _post(twilio, FORM), _post(twilio, FORM)
    assert (failed.status_code, failed.json()["code"], failed.json()["status"]) == (400, 63016, 400)
    assert sent.status_code == 201
    missing = _post(twilio, {**FORM, "Body": ""})
    assert (missing.status_code, missing.json()["code"]) == (400, 21619)


def test_media_asks_for_the_credentials_then_redirects_to_storage(twilio):
    url = twilio.media_add(b"%PDF-1.7", "application/pdf")

    assert requests.get(url, timeout=5).status_code == 401
    redirect = requests.get(
        url, auth=(twilio.account_sid, twilio.auth_token), allow_redirects=False, timeout=5
    )
    assert redirect.status_code == 307
    stored = requests.get(redirect.headers["Location"], timeout=5)
    assert (stored.content, stored.headers["Content-Type"]) == (b"%PDF-1.7", "application/pdf")
