"""From the assistant's `output.generic` to WhatsApp message bodies. Pure functions.

Every response type of Assistant v2 becomes something a WhatsApp customer can use:

    text                 text (consecutive texts joined into one message: several sent at once
                         risk the pair rate limit, 131056, and arrive in no guaranteed order)
    option, suggestion   reply buttons (up to 3 short labels), a list (up to 10), numbered text
                         beyond; the option's value is what goes back to Watson
    image, video, audio  the media itself, sent by its link (title as the caption)
    iframe               its title and link, as text
    search               the results' titles, bodies and links, as text
    channel_transfer     its message to the user and the link
    connect_to_agent     the hand-off (its transfer_info kept on the room)
    pause, end_session   nothing: deliberately silent
    user_defined, other  nothing here: the turn ends in BOT_FALLBACK_MESSAGE or the hand-off
                         (BOT_UNREADABLE_REPLY), never in silence
"""

import re
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
    media_link_body,
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
    # An options message: what each option sends back to Watson, in the order they are numbered.
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Handoff:
    note: str  # message_to_human_agent, for the agent
    available_text: str
    unavailable_text: str
    transfer_info: dict[str, Any] = field(default_factory=dict)


# Response types that are meant to say nothing to the customer.
SILENT_TYPES = frozenset({"pause", "end_session"})


@dataclass
class BotReply:
    drafts: list[Draft] = field(default_factory=list)
    handoff: Handoff | None = None
    # Types of the output that had nothing a WhatsApp customer can be shown (user_defined, types
    # chatbridge does not know, items without their content).
    unreadable: list[str] = field(default_factory=list)
    # A deliberately silent item was there (pause, end_session).
    silent: bool = False


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
        kind = _str(item.get("response_type"))
        if kind == "text" and _str(item.get("text")):
            texts.append(_str(item.get("text")))
        elif kind in ("option", "suggestion") and (options := _options(item)):
            flush_texts()
            reply.drafts.append(_options_draft(_str(item.get("title")), options))
        elif kind in ("image", "video", "audio") and _link(item.get("source")):
            flush_texts()
            title = _str(item.get("title")) or _str(item.get("description"))
            body = media_link_body(kind, _link(item.get("source")), caption=title)
            reply.drafts.append(
                Draft(type=kind, text=title or _link(item.get("source")), body=body)
            )
        elif kind == "iframe" and _link(item.get("source")):
            texts.append(_joined(_str(item.get("title")), _link(item.get("source"))))
        elif kind == "search" and (found := _search_text(item)):
            texts.append(found)
        elif kind == "channel_transfer" and (transfer := _channel_transfer_text(item)):
            texts.append(transfer)
        elif kind == "connect_to_agent" and reply.handoff is None:
            info = item.get("transfer_info")
            reply.handoff = Handoff(
                note=_str(item.get("message_to_human_agent")),
                available_text=_str((item.get("agent_available") or {}).get("message")),
                unavailable_text=_str((item.get("agent_unavailable") or {}).get("message")),
                transfer_info=info if isinstance(info, dict) else {},
            )
        elif kind in SILENT_TYPES:
            reply.silent = True
        else:
            reply.unreadable.append(kind or "?")
    flush_texts()
    return reply


def _link(value: Any) -> str:
    link = _str(value)
    return link if link.startswith(("https://", "http://")) else ""


def _joined(*parts: str) -> str:
    return "\n".join(part for part in parts if part)


def _search_text(item: dict[str, Any]) -> str:
    """A search's results as text: header, then each result's title, body and link."""
    results = [
        result
        for key in ("primary_results", "additional_results")
        for result in item.get(key) or []
        if isinstance(result, dict)
    ]
    blocks = [
        _joined(
            _str(result.get("title")),
            _plain(_str(result.get("body"))),
            _link(result.get("url")),
        )
        for result in results
    ]
    blocks = [block for block in blocks if block]
    if not blocks:
        return ""
    return "\n\n".join([_str(item.get("header")), *blocks]).strip()


def _plain(text: str) -> str:
    # Search bodies carry the engine's <em> highlight marks.
    return re.sub(r"</?em>", "", text)


def _channel_transfer_text(item: dict[str, Any]) -> str:
    info = item.get("transfer_info")
    target = (info.get("target") or {}) if isinstance(info, dict) else {}
    chat = target.get("chat") if isinstance(target, dict) else None
    url = _link(chat.get("url")) if isinstance(chat, dict) else ""
    return _joined(_str(item.get("message_to_user")), url)


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
    ids = [option_reply_id(i, value) for i, (_, value) in enumerate(options, 1)]
    values = tuple(value for _, value in options)
    if unique and len(options) <= BUTTONS_MAX and all(len(x) <= BUTTON_TITLE_MAX for x in labels):
        body = buttons_body(prompt, list(zip(ids, labels, strict=True)))
        return Draft(type=Message.Type.INTERACTIVE, text=readable, body=body, options=values)
    if (
        unique
        and len(options) <= LIST_ROWS_MAX
        and all(len(x) <= LIST_ROW_TITLE_MAX for x in labels)
    ):
        body = list_body(prompt, LIST_BUTTON, list(zip(ids, labels, strict=True)))
        return Draft(type=Message.Type.INTERACTIVE, text=readable, body=body, options=values)
    return Draft(type=Message.Type.TEXT, text=readable, body=text_body(readable), options=values)


# A reply button's or list row's id: its number and the value Watson is to receive.
_OPTION_ID = re.compile(r"opt([0-9]+):(.*)", re.DOTALL)


def option_reply_id(number: int, value: str) -> str:
    return f"opt{number}:{value}"[:OPTION_ID_MAX]


def option_value(reply_id: str) -> str | None:
    """The value an option's reply id carries (what Watson is to receive), or None."""
    match = _OPTION_ID.fullmatch(reply_id)
    return match[2] if match and match[2] else None


def typed_choice(text: str) -> int | None:
    """The number of a message that is only a number ("2", "2.", " 2) "): a customer answering
    numbered options; else None."""
    match = re.fullmatch(r"\s*([0-9]{1,2})[.)]?\s*", text)
    return int(match[1]) if match else None
