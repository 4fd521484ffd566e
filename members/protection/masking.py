"""The one place personal data is masked for display: API answers, pages, messages, logs.

Each mask shows at most a fixed, small part of the value. Input that does not
look like the expected kind (too short, wrong characters, None) gets the
fully masked form of that kind, so a garbled or truncated value can never
show more than a well-formed one; fully masked forms have a fixed length so
they don't leak the input's length either.
"""

from __future__ import annotations

import re

from members.protection import identity

CARD_MASKED = "**** ****"
PHONE_MASKED = "*" * 11
ID_NO_MASKED = "*" * 18
NAME_MASKED = "**"
OPENID_MASKED = "*" * 12

# ASCII digits only: "\d" alone also matches other scripts' digits.
_LAST4 = re.compile(r"^\d{4}$", re.ASCII)
_CARD = re.compile(r"^\d{12,19}$", re.ASCII)
_PHONE = re.compile(r"^\d{11}$", re.ASCII)
_ID_NO = re.compile(r"^(\d{15}|\d{17}[\dX])$", re.ASCII)
_OPENID = re.compile(r"^[A-Za-z0-9_-]{16,64}$", re.ASCII)  # WeChat's are 28 characters


def mask_card(card_no_or_last4: str | None) -> str:
    """``"**** 1234"`` from a full card number or its last four digits."""
    value = identity.canonical_card(card_no_or_last4 or "")
    if _LAST4.match(value) or _CARD.match(value):
        return f"**** {value[-4:]}"
    return CARD_MASKED


def mask_phone(phone: str | None) -> str:
    """``"138****8000"``: network prefix and last four digits of an 11-digit number."""
    value = identity.canonical_phone(phone or "")
    if _PHONE.match(value):
        return f"{value[:3]}****{value[-4:]}"
    return PHONE_MASKED


def mask_id_no(id_no: str | None) -> str:
    """``"1101**********123X"``: first four (province and city) and last four characters."""
    value = identity.canonical_id_no(id_no or "")
    if _ID_NO.match(value):
        return f"{value[:4]}{'*' * (len(value) - 8)}{value[-4:]}"
    return ID_NO_MASKED


def mask_name(name: str | None) -> str:
    """``"张**"``: the first character, the rest starred; a one-character name is all stars."""
    value = " ".join((name or "").split())
    if len(value) < 2:
        return NAME_MASKED
    return value[0] + "*" * (len(value) - 1)


def mask_openid(openid: str | None) -> str:
    """``"oOff****0001"``: first and last four characters of a WeChat openid, enough for
    staff to tell two apart in a sample, never enough to address one."""
    value = openid or ""
    if _OPENID.match(value):
        return f"{value[:4]}****{value[-4:]}"
    return OPENID_MASKED
