"""Every kind of message the bank sends through WeChat, in WeChat's shapes and value rules.

Builders take plain values (who, which template, keyword → text) and return the request
body WeChat expects; ``send`` posts one and returns WeChat's msgid. What WeChat's
refusals mean arrives as the typed errors of ``wechat.errors`` (``NotFollowing``,
``QuotaExhausted``, ``OutsideServiceWindow``...), raised by the client.

Value rules (wechat-platform.md 8.3-8.5):
- subscription notices and mini-program subscribe messages: a typed keyword's value has
  a length limit by its type (``thing`` 20, ``number``/``letter``/``character_string``
  32, ``symbol`` 5, ``phone_number`` 17, ``car_number`` 8, ``name`` 20, ``phrase`` 5) and
  never a control character or newline. A longer value is refused (47003) and the
  message lost, so it is cut here, with an ellipsis;
- template messages (since 2023-05): no ``first``/``remark``, no colours; WeChat shows at
  most 20 characters of each value and cuts the rest itself, without an error;
- mass sends by openid list take 2 to 10,000 openids per call; ``clientmsgid`` (at most 64
  bytes) makes a retried call a no-op (45065) instead of a second send.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from wechat.client import WeChatAPIClient

TEMPLATE = "message/template/send"  # official account: service notices only
OA_SUBSCRIBE = "message/subscribe/bizsend"  # official account: subscription notices
MINIAPP_SUBSCRIBE = "message/subscribe/send"  # mini-program: subscribe messages
CUSTOM = "message/custom/send"  # official account: customer-service messages
MASS_BY_OPENIDS = "message/mass/send"
MASS_BY_TAG = "message/mass/sendall"

TYPED_LIMITS = {"thing": 20, "number": 32, "letter": 32, "character_string": 32,
                "symbol": 5, "phone_number": 17, "car_number": 8, "name": 20, "phrase": 5}
ELLIPSIS = "…"
MASS_MIN_OPENIDS, MASS_MAX_OPENIDS = 2, 10_000
CLIENT_MSG_ID_MAX_BYTES = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
# Text content, by API (unconfirmed bounds, from WeChat's console and its SDKs' users): a
# mass send's text at most 600 characters; a customer-service text at most 2,048 bytes of
# UTF-8 (45002 "content size out of limit" beyond).
MASS_TEXT_MAX_CHARS = 600
CUSTOM_TEXT_MAX_BYTES = 2048
_TEXT_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")  # a line break (\n) is text


def typed_value(keyword: str, value: str) -> str:
    """``value`` as a typed keyword (``thing3``, ``amount2``...) may carry it: no control
    characters, cut to its type's limit with an ellipsis."""
    value = _CONTROL.sub(" ", value).strip()
    limit = TYPED_LIMITS.get(keyword.rstrip("0123456789"))
    if limit is None or len(value) <= limit:
        return value
    return value[: limit - len(ELLIPSIS)] + ELLIPSIS


def text_problem(api: str, text: str) -> str | None:
    """Why ``text`` cannot go as a text message of ``api`` (``MASS_BY_OPENIDS``,
    ``MASS_BY_TAG`` or ``CUSTOM``), or None: within the API's length, no control character
    but line breaks."""
    if _TEXT_CONTROL.search(text):
        return "must hold no control character (line breaks are fine)"
    if api == CUSTOM and len(text.encode()) > CUSTOM_TEXT_MAX_BYTES:
        return (f"must be at most {CUSTOM_TEXT_MAX_BYTES} bytes of UTF-8 "
                "(about 680 Chinese characters)")
    if api in (MASS_BY_OPENIDS, MASS_BY_TAG) and len(text) > MASS_TEXT_MAX_CHARS:
        return f"must be at most {MASS_TEXT_MAX_CHARS} characters"
    return None


def _typed_data(values: Mapping[str, str]) -> dict[str, dict[str, str]]:
    return {keyword: {"value": typed_value(keyword, value)} for keyword, value in values.items()}


def _client_msg_id(value: str) -> str:
    if len(value.encode()) > CLIENT_MSG_ID_MAX_BYTES:
        raise ValueError(f"a client_msg_id is at most {CLIENT_MSG_ID_MAX_BYTES} bytes")
    return value


def template(openid: str, template_id: str, values: Mapping[str, str], *, client_msg_id: str,
             url: str | None = None) -> dict[str, Any]:
    """A template message (service notices only; marketing in one is refused, 40249)."""
    body: dict[str, Any] = {
        "touser": openid, "template_id": template_id,
        "client_msg_id": _client_msg_id(client_msg_id),
        "data": {keyword: {"value": value} for keyword, value in values.items()},
    }
    if url:
        body["url"] = url
    return body


def miniapp_subscribe(openid: str, template_id: str, values: Mapping[str, str], *,
                      page: str) -> dict[str, Any]:
    """A mini-program subscribe message (one send per grant; no client_msg_id)."""
    return {"touser": openid, "template_id": template_id, "page": page,
            "data": _typed_data(values)}


def oa_subscribe(openid: str, template_id: str, values: Mapping[str, str], *,
                 client_msg_id: str, page: str | None = None) -> dict[str, Any]:
    """An official-account subscription notice to a follower who granted it."""
    body: dict[str, Any] = {"touser": openid, "template_id": template_id,
                            "client_msg_id": _client_msg_id(client_msg_id),
                            "data": _typed_data(values)}
    if page:
        body["page"] = page
    return body


def custom_text(openid: str, text: str) -> dict[str, Any]:
    """A customer-service text (within the user's window: 5 in 48 h after a message)."""
    return {"touser": openid, "msgtype": "text", "text": {"content": text}}


def mass_text(openids: Sequence[str], text: str, *, client_msg_id: str) -> dict[str, Any]:
    """A mass send of ``text`` to 2-10,000 openids (each counts against their 4 a month)."""
    if not MASS_MIN_OPENIDS <= len(openids) <= MASS_MAX_OPENIDS:
        raise ValueError(f"a mass send takes {MASS_MIN_OPENIDS} to {MASS_MAX_OPENIDS} openids")
    return {"touser": list(openids), "msgtype": "text", "text": {"content": text},
            "clientmsgid": _client_msg_id(client_msg_id)}


def mass_text_to_tag(tag_id: int, text: str, *, client_msg_id: str) -> dict[str, Any]:
    """A mass send of ``text`` to every follower carrying the WeChat tag ``tag_id``."""
    return {"filter": {"is_to_all": False, "tag_id": tag_id}, "msgtype": "text",
            "text": {"content": text}, "clientmsgid": _client_msg_id(client_msg_id)}


def send(client: WeChatAPIClient, api: str, body: Mapping[str, Any]) -> str | None:
    """Post ``body`` to ``api``; WeChat's msgid (``msg_id`` for mass sends), if it gave one."""
    answer = client.post(api, data=dict(body))
    msgid = answer.get("msgid", answer.get("msg_id"))
    return None if msgid is None else str(msgid)
