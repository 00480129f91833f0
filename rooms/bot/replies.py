"""From the assistant's `output.generic` to WhatsApp message bodies. Pure functions.

Text items are joined into one message: several messages sent at once risk WhatsApp's pair rate
limit (131056) and arrive in no guaranteed order. Options become reply buttons (up to 3 short
labels) or a list (up to 10) and numbered text beyond what WhatsApp allows.
"""

from dataclasses import dataclass, field
from typing import Any

from rooms.models import Message
from rooms.whatsapp.client import (
    BUTTON_TITLE_MAX,
    BUTTONS_MAX,
    LIST_ROW_TITLE_MAX,
    LIST_ROWS_MAX,
    buttons_body,
    list_body,
    text_body,
)

OPTION_PROMPT = "Elige una opción:"
LIST_BUTTON = "Ver opciones"
OPTION_ID_MAX = 200


@dataclass(frozen=True)
class Draft:
    """An outbound message before it is stored: our type, readable text, the body to post."""

    type: str
    text: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Handoff:
    note: str  # message_to_human_agent, for the agent
    available_text: str
    unavailable_text: str


@dataclass
class BotReply:
    drafts: list[Draft] = field(default_factory=list)
    handoff: Handoff | None = None


def text_draft(text: str) -> Draft:
    return Draft(type=Message.Type.TEXT, text=text, body=text_body(text))


def replies_from_watson(output: dict[str, Any]) -> BotReply:
    reply = BotReply()
    texts: list[str] = []

    def flush_texts() -> None:
        if texts:
            reply.drafts.append(text_draft("\n\n".join(texts)))
            texts.clear()

    for item in output.get("generic", []):
        if not isinstance(item, dict) or not _for_whatsapp(item):
            continue
        kind = item.get("response_type")
        if kind == "text" and _str(item.get("text")):
            texts.append(_str(item.get("text")))
        elif kind in ("option", "suggestion"):
            options = _options(item)
            if options:
                flush_texts()
                reply.drafts.append(_options_draft(_str(item.get("title")), options))
        elif kind in ("image", "video", "audio", "iframe"):
            link = " ".join(filter(None, [_str(item.get("title")), _str(item.get("source"))]))
            if link:
                texts.append(link)
        elif kind == "connect_to_agent" and reply.handoff is None:
            reply.handoff = Handoff(
                note=_str(item.get("message_to_human_agent")),
                available_text=_str((item.get("agent_available") or {}).get("message")),
                unavailable_text=_str((item.get("agent_unavailable") or {}).get("message")),
            )
        # pause, user_defined, channel_transfer, search and the rest: nothing to send.
    flush_texts()
    return reply


def _for_whatsapp(item: dict[str, Any]) -> bool:
    """Items that name channels are meant for those built-in integrations only."""
    channels = item.get("channels")
    if not isinstance(channels, list) or not channels:
        return True
    return any(isinstance(c, dict) and c.get("channel") == "whatsapp" for c in channels)


def _str(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _options(item: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, the text to send back) of each option or suggestion."""
    found = []
    for option in item.get("options") or item.get("suggestions") or []:
        if not isinstance(option, dict) or not _str(option.get("label")):
            continue
        value = ((option.get("value") or {}).get("input") or {}).get("text")
        found.append((_str(option.get("label")), _str(value) or _str(option.get("label"))))
    return found


def _options_draft(title: str, options: list[tuple[str, str]]) -> Draft:
    prompt = title or OPTION_PROMPT
    labels = [label for label, _ in options]
    readable = "\n".join([prompt, *(f"{i}. {label}" for i, label in enumerate(labels, 1))])
    unique = len(set(labels)) == len(labels)
    ids = [f"opt{i}:{value}"[:OPTION_ID_MAX] for i, (_, value) in enumerate(options, 1)]
    if unique and len(options) <= BUTTONS_MAX and all(len(x) <= BUTTON_TITLE_MAX for x in labels):
        body = buttons_body(prompt, list(zip(ids, labels, strict=True)))
        return Draft(type=Message.Type.INTERACTIVE, text=readable, body=body)
    if (
        unique
        and len(options) <= LIST_ROWS_MAX
        and all(len(x) <= LIST_ROW_TITLE_MAX for x in labels)
    ):
        body = list_body(prompt, LIST_BUTTON, list(zip(ids, labels, strict=True)))
        return Draft(type=Message.Type.INTERACTIVE, text=readable, body=body)
    return text_draft(readable)
