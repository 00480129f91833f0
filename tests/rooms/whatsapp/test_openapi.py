"""Every kind of body chatbridge sends to the Cloud API's `messages` endpoint validates against
Meta's published OpenAPI (`components.schemas.Message`, read from ../shared/data/whatsapp-openapi/
as that folder's README says: each `allOf` merged first, and `recipient` allowed, which v23.0
predates)."""

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from rooms.bot.replies import replies_from_watson
from rooms.delivery.services import send_reference
from rooms.whatsapp.client import (
    buttons_body,
    list_body,
    media_id_body,
    media_link_body,
    message_payload,
    read_mark_payload,
    template_body,
    text_body,
    whatsapp_client,
)
from tests.servers import ROOT

SPEC_NAME = "business-messaging-api_v23.0.yaml"
SPEC = next(
    (
        folder / SPEC_NAME
        for folder in (
            ROOT.parent / "shared" / "data" / "whatsapp-openapi",
            Path("/work/shared/data/whatsapp-openapi"),
        )
        if (folder / SPEC_NAME).exists()
    ),
    None,
)
pytestmark = pytest.mark.skipif(SPEC is None, reason="Meta's OpenAPI is not on this machine")


@cache
def _spec() -> dict[str, Any]:
    """The OpenAPI document, read once (about 4 s with PyYAML's Python loader; libyaml's, where
    PyYAML has it, reads it in a fraction of that)."""
    assert SPEC is not None
    if yaml.__with_libyaml__:
        return yaml.load(SPEC.read_text(), Loader=yaml.CSafeLoader)
    return yaml.safe_load(SPEC.read_text())


def _schemas() -> dict[str, Any]:
    return _spec()["components"]["schemas"]


def _resolved(node: Any) -> Any:
    """The schema with its $refs inlined and every allOf merged into one object schema."""
    if isinstance(node, list):
        return [_resolved(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _resolved(_schemas()[node["$ref"].rsplit("/", 1)[1]])
    if "allOf" in node:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in _resolved(node["allOf"]):
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
            if "additionalProperties" in part:
                merged["additionalProperties"] = part["additionalProperties"]
        return merged
    return {
        key: _resolved(value)
        for key, value in node.items()
        if key not in ("discriminator", "example", "examples")
    }


def _message_schema(kind: str, *, by_user_id: bool) -> dict[str, Any]:
    mapping = _schemas()["Message"]["discriminator"]["mapping"]
    schema = _resolved({"$ref": mapping[kind]})
    # Two send fields the v23.0 description predates, both in the Cloud API's send reference
    # (../shared/docs/external-apis.md, 2.1): `recipient` (a business-scoped user id, in place
    # of `to`) and `biz_opaque_callback_data` (at most 512 characters, echoed in the statuses).
    schema["properties"]["recipient"] = {"type": "string"}
    schema["properties"]["biz_opaque_callback_data"] = {"type": "string", "maxLength": 512}
    if by_user_id:
        schema["required"] = [field for field in schema["required"] if field != "to"]
    return schema


def validate_body(body: dict[str, Any]) -> None:
    """A body chatbridge builds, as it is posted to a customer, against Meta's schema."""
    _validate(message_payload(to="573001234567", body=body, reference=send_reference(42)))


def _validate(payload: dict[str, Any]) -> None:
    schema = _message_schema(payload["type"], by_user_id="recipient" in payload)
    jsonschema.validate(payload, schema)


WATSON_MEDIA = {
    "generic": [
        {"response_type": "image", "source": "https://example.com/a.png", "title": "A"},
        {"response_type": "video", "source": "https://example.com/a.mp4", "title": "B"},
        {"response_type": "audio", "source": "https://example.com/a.ogg"},
    ]
}

BODIES = {
    "text": text_body("hola"),
    "buttons": buttons_body("¿Qué necesitas?", [("opt1:saldo", "Saldo"), ("opt2:t", "Tarjetas")]),
    "list": list_body("Elige", "Ver opciones", [(f"opt{i}:v{i}", f"Opción {i}") for i in range(6)]),
    "image by link": media_link_body("image", "https://example.com/a.png", caption="Tu tarjeta"),
    "audio by link": media_link_body("audio", "https://example.com/a.ogg", caption="ignored"),
    "template": template_body("seguimiento_caso", "es", ["Ana", "Marta"]),
    "template without parameters": template_body("bienvenida", "es_CO", []),
    "image by id": media_id_body("image", "4490709327384033", caption="El comprobante"),
    "video by id": media_id_body("video", "4490709327384034", caption="Cómo pagar"),
    "audio by id": media_id_body("audio", "4490709327384035", caption="ignored"),
    "sticker by id": media_id_body("sticker", "4490709327384036", caption="ignored"),
    "document by id": media_id_body(
        "document", "4490709327384037", caption="Su extracto", filename="extracto-marzo.pdf"
    ),
    **{
        f"from Watson: {draft.type}": draft.body
        for draft in replies_from_watson(WATSON_MEDIA).drafts
    },
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
@pytest.mark.parametrize("addressed", ["to", "recipient"])
def test_what_chatbridge_sends_validates_against_metas_schema(body, addressed):
    to, recipient = ("573001234567", "") if addressed == "to" else ("", "US.1234567890")
    _validate(
        message_payload(to=to, recipient_user_id=recipient, body=body, reference=send_reference(42))
    )


def test_the_validation_can_fail():
    payload = message_payload(to="573001234567", body=text_body("hola"))
    payload["text"]["bodyy"] = "a misspelt field"
    with pytest.raises(jsonschema.ValidationError):
        _validate(payload)
    with pytest.raises(jsonschema.ValidationError):
        _validate({**message_payload(to="573001234567", body=text_body("x")), "colour": "red"})


def _send_examples() -> dict[str, Any]:
    paths = _spec()["paths"]
    (messages,) = [item for path, item in paths.items() if path.endswith("/messages")]
    content = messages["post"]["requestBody"]["content"]["application/json"]
    return {name: example["value"] for name, example in content["examples"].items()}


def test_the_read_mark_is_metas_published_example():
    """The schema has no read mark; the send endpoint's example of one is the contract."""
    example = _send_examples()["Send typing indicator and read receipt"]
    ours = read_mark_payload("wamid.ours", typing=True)
    assert ours == {**example, "message_id": "wamid.ours"}
    plain = read_mark_payload("wamid.ours", typing=False)
    assert plain == {key: value for key, value in ours.items() if key != "typing_indicator"}


def _upload_schema() -> dict[str, Any]:
    paths = _spec()["paths"]
    (media,) = [item for path, item in paths.items() if path.endswith("/{Phone-Number-ID}/media")]
    return media["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]


def test_the_media_upload_is_the_published_form(whatsapp):
    """The upload is multipart with every field of Meta's schema, and `type` (the MIME type),
    which the Cloud API's upload reference requires beside them."""
    media_id = whatsapp_client().media_upload(
        b"%PDF-1.4 test", mime_type="application/pdf", filename="extracto.pdf"
    )
    assert whatsapp.uploads[-1]["id"] == media_id
    (request,) = [r for r in whatsapp.requests if r["path"].endswith("/media")]
    assert request["headers"]["content-type"].startswith("multipart/form-data; boundary=")
    fields = whatsapp.last_upload_fields
    schema = _upload_schema()
    form = {name: value[1].decode("latin-1") for name, value in fields.items()}
    jsonschema.validate(form, {**schema, "required": list(schema["properties"])})
    assert form["messaging_product"] == "whatsapp"
    assert form["type"] == "application/pdf"
    assert fields["file"][0] == "extracto.pdf"
    assert fields["file"][1] == b"%PDF-1.4 test"
