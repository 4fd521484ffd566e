"""Callback signatures and safe-mode (AES) message crypto for the official account.

WeChat's scheme: AES-256-CBC, key = base64(EncodingAESKey + "="), IV = the
key's first 16 bytes, PKCS#7 padding to 32-byte blocks, plaintext =
random(16) + big-endian length(4) + XML + AppID. wechatpy trusts the pad byte
and the length field; here every field of a hostile ciphertext is checked and
any inconsistency is a ``CryptoError``, never an exception from deep inside.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

_BLOCK_BITS = 32 * 8  # WeChat pads to 32 bytes, not AES's 16


class CryptoError(ValueError):
    """The ciphertext is malformed, or was not made for this app."""


def signature(*parts: str) -> str:
    """SHA-1 of the parts sorted and joined, as WeChat signs callbacks."""
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324 - WeChat's scheme


def signature_matches(expected: str, *parts: str) -> bool:
    """Constant-time check of a callback signature."""
    return hmac.compare_digest(signature(*parts).encode(), (expected or "").encode())


class MessageCrypto:
    """Encrypts replies and decrypts pushes for one official account."""

    def __init__(self, token: str, encoding_aes_key: str, appid: str) -> None:
        self.token = token
        self.appid = appid.encode()
        self.key = base64.b64decode(encoding_aes_key + "=")
        if len(self.key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        # Stateless: each encryptor()/decryptor() is a fresh context, so one serves all calls.
        self._cipher = Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def decrypt(self, encrypted: str) -> bytes:
        """The XML inside ``<Encrypt>``; raises CryptoError on any inconsistency."""
        try:
            data = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CryptoError("Encrypt is not base64") from exc
        if not data or len(data) % 16:
            raise CryptoError("ciphertext length is not a multiple of the AES block")
        decryptor = self._cipher.decryptor()
        padded = decryptor.update(data) + decryptor.finalize()
        unpadder = padding.PKCS7(_BLOCK_BITS).unpadder()
        try:
            plain = unpadder.update(padded) + unpadder.finalize()
        except ValueError as exc:
            raise CryptoError("bad padding") from exc
        if len(plain) < 20:
            raise CryptoError("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise CryptoError("length field exceeds the plaintext")
        if not hmac.compare_digest(plain[20 + length:], self.appid):
            raise CryptoError("message was encrypted for another AppID")
        return plain[20:20 + length]

    def encrypt(self, xml: bytes, random_prefix: bytes | None = None) -> str:
        """Base64 ciphertext of ``xml`` for this app (``random_prefix`` only for test vectors)."""
        prefix = random_prefix if random_prefix is not None else os.urandom(16)
        plain = prefix + struct.pack(">I", len(xml)) + xml + self.appid
        padder = padding.PKCS7(_BLOCK_BITS).padder()
        padded = padder.update(plain) + padder.finalize()
        encryptor = self._cipher.encryptor()
        return base64.b64encode(encryptor.update(padded) + encryptor.finalize()).decode()

    def envelope(self, xml: bytes, timestamp: str, nonce: str) -> str:
        """The safe-mode reply: Encrypt, MsgSignature, TimeStamp, Nonce."""
        encrypted = self.encrypt(xml)
        msg_signature = signature(self.token, timestamp, nonce, encrypted)
        return (
            f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt>"
            f"<MsgSignature><![CDATA[{msg_signature}]]></MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce><![CDATA[{nonce}]]></Nonce></xml>"
        )
