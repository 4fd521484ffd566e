"""Personal data at rest: encryption under a keyring, and blind indexes to find it.

Encryption is AES-256-GCM with a random 96-bit nonce. The context (by
convention ``"<table>.<column>"``, e.g. ``"card_holder.card_no"``) is the
associated data, so a ciphertext copied into another column, or another
table, fails to decrypt instead of turning a phone number into a card number.

A token is ``v1.<kid>.<base64url(nonce + ciphertext)>``: plain ASCII that fits
a TEXT column. ``kid`` is the first 8 hex characters of SHA-256 of the key, so
the keyring needs no separate id configuration and a token names the key that
opens it. ``DATA_ENCRYPTION_KEY`` lists the keys, comma-separated base64 of 32
bytes: the first encrypts, every one decrypts. Rotation prepends a new key,
runs ``flask members rotate-key``, then drops the old key.

Ciphertexts are random, so equality lookups use blind indexes: HMAC-SHA256 of
the normalised value under a subkey derived from ``PII_INDEX_KEY`` per kind
(HKDF, info = kind), so an index of one kind can't be matched against another
kind's. The index key is not part of the keyring and is not rotated with it:
changing it means recomputing every index.

Errors never carry the plaintext, the ciphertext or a key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import Flask, current_app

from config.validation import ConfigError
from members.protection import identity

FORMAT_VERSION = "v1"
KEY_BYTES = 32
NONCE_BYTES = 12
_TAG_BYTES = 16
_KEY_ID = re.compile(r"^[0-9a-f]{8}$")
_EXTENSION = "pii"


class PIIError(Exception):
    """A token could not be opened: malformed, unknown key id, tampered or wrong context."""


def _canonical_ip(value: str) -> str:
    """One spelling per address: IPv6 compressed and lower-case, IPv4-mapped as IPv4."""
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        return value.strip()
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return address.compressed


# What each blind-index kind normalises before hashing, so formatting never splits a match.
INDEX_KINDS: dict[str, Callable[[str], str]] = {
    "card": identity.canonical_card,
    "phone": identity.canonical_phone,
    "id_no": identity.canonical_id_no,
    "openid": lambda value: value,
    "ip": _canonical_ip,
    "username": lambda value: value.strip().lower(),  # a staff account's (console logins)
    "voucher": lambda value: value,  # a partner's voucher code, as given: codes may be cased
}


def key_id_of(key: bytes) -> str:
    """The id a key is known by in tokens: 8 hex characters of its SHA-256."""
    return hashlib.sha256(key).hexdigest()[:8]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    padded = text + "=" * (-len(text) % 4)
    return base64.b64decode(padded, altchars=b"-_", validate=True)


class Vault:
    """Encrypts, decrypts and blind-indexes personal data with the configured keys."""

    def __init__(self, keys: Sequence[bytes], index_key: bytes) -> None:
        if not keys:
            raise ValueError("the keyring needs at least one key")
        if any(len(key) != KEY_BYTES for key in keys):
            raise ValueError(f"every encryption key must be {KEY_BYTES} bytes")
        if len(index_key) < KEY_BYTES:
            raise ValueError(f"the index key must be at least {KEY_BYTES} bytes")
        self._ciphers = {key_id_of(key): AESGCM(key) for key in keys}
        if len(self._ciphers) != len(keys):
            raise ValueError("the keyring lists the same key twice")
        self._current = key_id_of(keys[0])
        self._index_key = index_key
        self._subkeys: dict[str, bytes] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Vault:
        """From ``DATA_ENCRYPTION_KEY`` and ``PII_INDEX_KEY``; ConfigError names the bad one."""
        keys = [_decode_key("DATA_ENCRYPTION_KEY", part)
                for part in (config.get("DATA_ENCRYPTION_KEY") or "").split(",")]
        index_key = _decode_key("PII_INDEX_KEY", config.get("PII_INDEX_KEY") or "")
        if len(index_key) < KEY_BYTES:
            raise ConfigError(f"PII_INDEX_KEY must decode to at least {KEY_BYTES} bytes")
        if index_key in keys:
            raise ConfigError("PII_INDEX_KEY must differ from every DATA_ENCRYPTION_KEY key")
        try:
            return cls(keys, index_key)
        except ValueError as exc:
            raise ConfigError(f"DATA_ENCRYPTION_KEY: {exc}") from None

    def __repr__(self) -> str:
        return f"Vault(current={self._current!r}, keys={sorted(self._ciphers)!r})"

    # --- encryption ----------------------------------------------------------------

    @property
    def current_key_id(self) -> str:
        """The id of the key new tokens are encrypted with."""
        return self._current

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of every key that can decrypt."""
        return frozenset(self._ciphers)

    def encrypt(self, plaintext: str, context: str) -> str:
        """Encrypt under the current key, bound to ``context`` (``"<table>.<column>"``)."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self._current].encrypt(
            nonce, plaintext.encode("utf-8"), _context_bytes(context)
        )
        return f"{FORMAT_VERSION}.{self._current}.{_b64encode(nonce + sealed)}"

    def decrypt(self, token: str, context: str) -> str:
        """Open a token made by ``encrypt`` with the same context, under any key of the ring."""
        kid, body = _split(token)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise PIIError(f"{context}: token encrypted with unknown key id {kid}")
        try:
            raw = _b64decode(body)
        except (binascii.Error, ValueError):
            raise PIIError(f"{context}: token body is not base64url") from None
        if len(raw) < NONCE_BYTES + _TAG_BYTES:
            raise PIIError(f"{context}: token is truncated")
        try:
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _context_bytes(context))
        except InvalidTag:
            raise PIIError(
                f"{context}: token failed authentication (tampered, or another column's)"
            ) from None
        return plain.decode("utf-8")

    def key_id(self, token: str) -> str:
        """The id of the key a token was encrypted with (known to this keyring or not)."""
        return _split(token)[0]

    def needs_rotation(self, token: str) -> bool:
        """True when the token is not under the current key."""
        return self.key_id(token) != self._current

    # --- blind indexes -------------------------------------------------------------

    def blind_index(self, kind: str, value: str) -> str:
        """Hex HMAC-SHA256 of the normalised value under the kind's subkey.

        Kinds: ``card`` (separators dropped), ``phone`` (11 digits, +86 dropped),
        ``id_no`` (upper-case), ``openid`` (as is), ``ip`` (canonical address),
        ``username`` (a staff account's, lower-case), ``voucher`` (as is).
        """
        normalise = INDEX_KINDS.get(kind)
        if normalise is None:
            raise ValueError(f"unknown blind index kind {kind!r}; expected one of "
                             f"{sorted(INDEX_KINDS)}")
        return hmac.new(self._subkey(kind), normalise(value).encode("utf-8"),
                        hashlib.sha256).hexdigest()

    def fingerprint(self, purpose: str, values: Sequence[str]) -> str:
        """Keyed digest of a tuple of values: detects change without being a plain hash of PII.

        A plain SHA-256 of a row could be confirmed by anyone guessing its
        contents; this needs the index key. ``purpose`` separates uses.
        """
        # JSON keeps the tuple unambiguous: ("a,b", "c") and ("a", "b,c") differ.
        encoded = json.dumps(list(values), ensure_ascii=False, separators=(",", ":"))
        return hmac.new(self._subkey(f"fingerprint:{purpose}"), encoded.encode("utf-8"),
                        hashlib.sha256).hexdigest()

    def _subkey(self, info: str) -> bytes:
        """HKDF subkey of the index key for ``info``, derived once per vault."""
        subkey = self._subkeys.get(info)
        if subkey is None:
            subkey = HKDF(algorithm=SHA256(), length=32, salt=None,
                          info=info.encode("utf-8")).derive(self._index_key)
            self._subkeys[info] = subkey
        return subkey


def _context_bytes(context: str) -> bytes:
    if not context:
        raise ValueError("an encryption context is required")
    return context.encode("utf-8")


def _split(token: str) -> tuple[str, str]:
    """``(kid, body)`` of a token, or PIIError without echoing it."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3 or parts[0] != FORMAT_VERSION or not _KEY_ID.match(parts[1]) \
            or not parts[2]:
        raise PIIError(f"not a {FORMAT_VERSION} encrypted token")
    return parts[1], parts[2]


def _decode_key(setting: str, text: str) -> bytes:
    """One base64 key (standard or URL-safe alphabet); ConfigError naming the setting."""
    text = text.strip()
    if not text:
        raise ConfigError(f"{setting} is not set, or lists an empty key")
    try:
        return base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{setting} must be base64") from None


def column_context(model: type, column: str) -> str:
    """The encryption context of a model's column: ``"<table>.<column>"``."""
    return f"{model.__tablename__}.{column}"


def init_app(app: Flask) -> None:
    """Validate the keys now, so a bad key stops the start rather than the first request."""
    app.extensions[_EXTENSION] = Vault.from_config(app.config)


def vault() -> Vault:
    """The current app's vault."""
    return current_app.extensions[_EXTENSION]
