"""Bad input, generated: whatever arrives with a valid signature gets 2xx or 4xx, never a 500;
a well-formed envelope is answered 200 whatever its items hold (the odd ones kept aside), what is
refused leaves nothing behind; the process stays healthy. The same for agents' frames.

HYPOTHESIS_EXAMPLES sets the number of examples (CI runs the default; `make reliability` more).
"""

import json
import os
import time
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.test import Client
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chatbridge.asgi import application
from rooms.areas import area_default
from rooms.models import Message, Room, UnusableItem
from tests.factories import AgentFactory
from tests.payloads import message, notification, signed_post, status, text_from
from users.models import Customer

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "60"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.text(max_size=40),
)
any_json = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=25,
)
nasty_text = st.text(
    alphabet=st.characters(codec="utf-8", categories=None) | st.sampled_from("\x00\u200f\u202e😀"),
    max_size=300,
)
message_types = st.sampled_from(
    [
        "text",
        "interactive",
        "button",
        "image",
        "audio",
        "video",
        "document",
        "sticker",
        "location",
        "reaction",
        "contacts",
        "order",
        "system",
        "unsupported",
        "hologram",
        "",
    ]
)


@st.composite
def mutated_notifications(draw: st.DrawFn) -> Any:
    """Valid-looking notifications with one part replaced by something wrong."""
    wa_id = draw(st.sampled_from(["573001000001", "573001000002", ""]) | st.text(max_size=40))
    kind = draw(message_types)
    item: dict[str, Any] = message(wa_id or "573001000003", "x", kind=kind, body=draw(any_json))
    if draw(st.booleans()):
        item["text"] = {"body": draw(nasty_text)}
    payload = notification(messages=[item])  # contacts from the sender, before any breakage
    for key in draw(st.lists(st.sampled_from(["id", "from", "timestamp", "type"]), max_size=2)):
        if draw(st.booleans()):
            item.pop(key, None)  # as Meta's system notices come without `from`
        else:
            item[key] = draw(any_json)
    if draw(st.booleans()):
        payload["entry"][0]["changes"][0]["value"]["statuses"] = [
            draw(st.sampled_from([status("wamid.x", "read"), {"id": 5}, {"status": "sent"}]))
        ]
    where = draw(st.sampled_from(["entry", "changes", "value", "contacts", "none"]))
    if where == "entry":
        payload["entry"] = draw(any_json)
    elif where == "changes":
        payload["entry"][0]["changes"] = draw(any_json)
    elif where == "value":
        payload["entry"][0]["changes"][0]["value"] = draw(any_json)
    elif where == "contacts":
        payload["entry"][0]["changes"][0]["value"]["contacts"] = draw(any_json)
    return payload


_examples: dict[str, int] = {}


def _deep(depth: int) -> bytes:
    return b'{"object":"whatsapp_business_account","entry":' + b"[" * depth + b"]" * depth + b"}"


def _counts() -> tuple[int, int, int, int]:
    inbound = Message.objects.filter(direction=Message.Direction.INBOUND)
    return (
        Customer.objects.count(),
        Room.objects.count(),
        inbound.count(),
        UnusableItem.objects.count(),
    )


def _refuse_constant(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def _is_envelope(body: bytes) -> bool:
    """Strict JSON from a WhatsApp Business Account with `entry` a list: always answered 200."""
    try:
        data = json.loads(body, parse_constant=_refuse_constant)
    except ValueError:
        return False
    return (
        isinstance(data, dict)
        and data.get("object") == "whatsapp_business_account"
        and isinstance(data.get("entry"), list)
    )


@FUZZ
@given(payload=st.one_of(any_json, mutated_notifications()))
def test_webhook_never_fails_on_signed_garbage(fake_vendors, payload):
    _examples["webhook"] = _examples.get("webhook", 0) + 1
    body = json.dumps(payload).encode()
    before = _counts()
    response = signed_post(Client(), body)
    if _is_envelope(body):
        # Whatever its items hold: a refusal would make Meta redeliver the good ones for days.
        assert response.status_code == 200, response.content[:200]
        result = response.json()
        inbound, unusable = _counts()[2:]
        event("envelope with skipped items" if result["skipped"] else "envelope, every item used")
        assert inbound - before[2] == result["stored"]
        assert 0 <= unusable - before[3] <= result["skipped"]  # a redelivered item is kept once
    else:
        event("not an envelope")
        assert response.status_code == 400, response.content[:200]
        assert _counts() == before  # refused whole: nothing half-stored
    _examples["webhook held"] = _examples.get("webhook held", 0) + 1


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        # Deeper than Python's recursion limit: not readable JSON, so not an envelope.
        (_deep(50_000), 400),
        # 100,001 entries that are not objects: each skipped, one row kept (they are the same).
        (
            b'{"object":"whatsapp_business_account","entry":[' + b'"x",' * 100_000 + b'"x"]}',
            {"stored": 0, "skipped": 100_001, "kept": 1},
        ),
        (
            json.dumps(text_from("573001000004", "\x00\ud800 NUL y surrogate")).encode(),
            {"stored": 1, "skipped": 0, "kept": 0},
        ),
        (
            json.dumps(text_from("573001000005", "x" * 100_000)).encode(),
            {"stored": 1, "skipped": 0, "kept": 0},
        ),
        (
            json.dumps(notification(messages=[message("5" * 40, "hola")])).encode(),
            {"stored": 0, "skipped": 1, "kept": 1},
        ),
        (
            json.dumps(
                notification(messages=[message("573001000006", "hola", wamid="w" * 300)])
            ).encode(),
            {"stored": 0, "skipped": 1, "kept": 1},
        ),
        (
            json.dumps(
                notification(statuses=[status("wamid.x", "failed", error_code=2**40)])
            ).encode(),
            {"stored": 0, "skipped": 0, "kept": 0},
        ),
    ],
    ids=["deep", "wide", "nul-surrogate", "long-text", "long-from", "long-id", "huge-code"],
)
def test_webhook_edge_payloads(fake_vendors, body, answer):
    response = signed_post(Client(), body)
    if answer == 400:
        assert response.status_code == 400
        assert _counts() == (0, 0, 0, 0)
    else:
        assert response.status_code == 200
        result = response.json()
        assert (result["stored"], result["skipped"]) == (answer["stored"], answer["skipped"])
        assert UnusableItem.objects.count() == answer["kept"]
    assert signed_post(Client(), text_from("573001000099", "sigo vivo")).status_code == 200


def test_unicode_is_stored_intact_and_sent_sanitised(post_webhook, watson, record_fault):
    text = "Ñandú 😀👩🏽‍💻 مرحبا \u200f\u202e <script>alert(1)</script>\r\n\tfin " + "ü" * 4096
    post_webhook(text_from("573001000007", text))
    stored = Message.objects.get(direction="in")
    assert stored.text == text
    sent = next(r for r in watson.requests if r["path"].endswith("/message"))["json"]["input"][
        "text"
    ]
    assert "\r" not in sent and "\n" not in sent and "\t" not in sent
    assert len(sent) <= 2048
    assert sent.startswith("Ñandú 😀👩🏽‍💻 مرحبا \u200f\u202e <script>")
    record_fault(
        "Unicode, emoji, RTL marks, control characters, 4,096+ characters",
        done="one message through the webhook and the bot",
        held="stored byte for byte; Watson got it without CR/LF/tab, ≤ 2,048 chars",
    )


# --- the agent protocol -------------------------------------------------------------------------

frames = st.one_of(
    nasty_text.filter(bool),  # the test communicator cannot send an empty frame
    any_json.map(json.dumps),
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(
                [
                    "take",
                    "send",
                    "close",
                    "release",
                    "transfer",
                    "to_bot",
                    "typing",
                    "sync",
                    "available",
                    "nope",
                ]
            )
        },
        optional={
            "room": any_json,
            "text": any_json,
            "reason": any_json,
            "agent": any_json,
            "rooms": any_json,
            "available": any_json,
            "id": any_json,
        },
    ).map(json.dumps),
)


@pytest.fixture
def agent_cookie(fake_vendors) -> str:
    # The default area, as migration 0013 leaves it: made on the first snapshot otherwise (the
    # flushed test database), whose save refreshes every console with a second snapshot.
    area_default()
    user = AgentFactory(username="fuzz-agent")
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@settings(
    max_examples=max(10, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(batch=st.lists(frames, min_size=1, max_size=15))
def test_agent_frames_never_break_the_socket(agent_cookie, batch):
    _examples["frames"] = _examples.get("frames", 0) + 1

    async def run() -> None:
        communicator = WebsocketCommunicator(
            application,
            "/ws/agent/",
            headers=[
                (b"origin", b"http://localhost"),
                (b"cookie", f"sessionid={agent_cookie}".encode()),
            ],
        )
        connected, _ = await communicator.connect(timeout=10)  # a busy machine is slow
        assert connected
        assert (await communicator.receive_json_from(timeout=5))["type"] == "snapshot"
        for text in batch:
            await communicator.send_to(text_data=text)
        await communicator.send_to(
            text_data=json.dumps({"type": "available", "available": True, "id": "end"})
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = await communicator.receive_json_from(timeout=5)
            assert frame["type"] in ("ack", "error", "queue", "event", "room", "typing"), frame
            if frame.get("id") == "end":
                break
        else:
            raise AssertionError("the socket stopped answering")
        await communicator.disconnect()

    async_to_sync(run)()


def test_fuzz_summary(request, record_fault):
    """Runs after the property tests of this module (pytest keeps file order). Each one selected
    must have run examples, and the webhook's must have held in every one: the report below
    would otherwise claim a check that never happened."""
    selected = [getattr(item, "originalname", item.name) for item in request.session.items]
    webhook, frames = (
        test.__name__ in selected
        for test in (
            test_webhook_never_fails_on_signed_garbage,
            test_agent_frames_never_break_the_socket,
        )
    )
    if not (webhook or frames):
        pytest.skip("no property test of this module was selected")
    if webhook:
        assert _examples.get("webhook", 0) > 0
        assert _examples.get("webhook held", 0) == _examples["webhook"]
        edge_payloads = selected.count("test_webhook_edge_payloads")
        record_fault(
            "Webhook: malformed, truncated, nested, huge, wrongly typed, unknown-type payloads",
            done=f"generated payloads with valid signatures (hypothesis), plus {edge_payloads} edge"
            " payloads",
            held="a signed envelope always 200, its unusable items kept once; anything else 400 and"
            " nothing stored; never 500; process healthy",
            times=_examples["webhook"] + edge_payloads,
        )
    if frames:
        assert _examples.get("frames", 0) > 0
        record_fault(
            "Agent protocol: generated frames (text, JSON, commands with wrong fields)",
            done=f"{_examples['frames']} batches of up to 15 frames over a real socket",
            held="an ack or an error for each; the socket stayed open",
            times=_examples["frames"],
        )
