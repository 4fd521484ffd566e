"""Safe-mode crypto against Tencent's published vectors, and hostile ciphertexts."""

from __future__ import annotations

import base64
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from wechat.crypto import CryptoError, MessageCrypto, signature, signature_matches

# Vector A: Tencent's WXBizMsgCrypt sample (wechat-platform.md §1.4).
A_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
A_APPID = "wx2c2769f8efd9abc2"
A_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8"
    "PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jis"
    "a+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X"
    "8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9"
    "FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)


def test_vector_a_decrypts_tencents_sample():
    xml = MessageCrypto("spamtest", A_KEY, A_APPID).decrypt(A_ENCRYPT)
    assert len(xml) == 280
    assert b"<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>" in xml
    assert b"<Content><![CDATA[abcdteT]]></Content>" in xml
    assert b"<MsgId>6054768590064713728</MsgId>" in xml


def test_vector_a_signatures():
    assert signature("spamtest", "1409735669", "1320562132") == (
        "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
    )
    assert signature_matches(
        "5d197aaffba7e9b25a30732f161a50dee96bd5fa", "spamtest", "1409735669", "1320562132",
        A_ENCRYPT,
    )
    assert not signature_matches("", "spamtest", "1409735669", "1320562132")


def test_vector_b_encrypts_deterministically():
    crypto = MessageCrypto("pamtest", A_KEY, "wxb11529c136998cb6")
    encrypted = crypto.encrypt("我是中文abcd123".encode(), random_prefix=b"aaaabbbbccccdddd")
    assert encrypted == (
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    )
    assert signature("pamtest", "1409304348", "xxxxxx", encrypted) == (
        "82c962d39941aa48552f90ef55aa323dc620cc10"
    )


def test_round_trip_and_envelope():
    crypto = MessageCrypto("tok", A_KEY, A_APPID)
    assert crypto.decrypt(crypto.encrypt(b"<xml>hi</xml>")) == b"<xml>hi</xml>"
    envelope = crypto.envelope(b"<xml/>", "1700000000", "n1")
    assert "<TimeStamp>1700000000</TimeStamp>" in envelope
    assert "<Nonce><![CDATA[n1]]></Nonce>" in envelope


def test_message_for_another_app_is_refused():
    other = MessageCrypto("tok", A_KEY, "wxanotherapp000001").encrypt(b"<xml/>")
    with pytest.raises(CryptoError, match="another AppID"):
        MessageCrypto("tok", A_KEY, A_APPID).decrypt(other)


def _raw_cipher(plain: bytes) -> str:
    key = base64.b64decode(A_KEY + "=")
    encryptor = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


@pytest.mark.parametrize(
    ("encrypted", "reason"),
    [
        ("not base64 at all!", "not base64"),
        ("", "multiple"),
        (base64.b64encode(b"x" * 15).decode(), "multiple"),
        # pad byte 0 and pad byte 33 are both outside 1..32
        (_raw_cipher(b"a" * 31 + b"\x00"), "padding"),
        (_raw_cipher(b"a" * 31 + b"\x21"), "padding"),
        # length field claims more bytes than there are
        (_raw_cipher(b"r" * 16 + struct.pack(">I", 10_000) + b"x" * 11 + b"\x01"), "length"),
        (_raw_cipher(b"r" * 15 + b"\x11" * 17), "too short"),
    ],
)
def test_hostile_ciphertexts_raise_crypto_error(encrypted, reason):
    with pytest.raises(CryptoError, match=reason):
        MessageCrypto("tok", A_KEY, A_APPID).decrypt(encrypted)
