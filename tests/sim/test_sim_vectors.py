"""Tencent's published vectors (wechat-platform.md §1.4) through the simulator's crypto path."""

from __future__ import annotations

import base64
import json

import xmltodict
from wechatpy.crypto import PrpCrypto, WeChatCrypto, WeChatWxaCrypto

from wechat.sim.pushes import render
from wechat.sim.sender import CallbackSender, sha1_signature

# Vector A: Tencent's WXBizMsgCrypt sample.
A_TOKEN, A_APPID = "spamtest", "wx2c2769f8efd9abc2"
A_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
A_TIMESTAMP, A_NONCE = "1409735669", "1320562132"
A_MSG_SIGNATURE = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
A_SIGNATURE = "16120ec1b8dbb870f510d87ce6bc2463eae6ca1a"
A_ENCRYPT = (
    "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PG"
    "HQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6"
    "tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp"
    "3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhv"
    "Ql+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
)
A_PLAINTEXT = (
    "<xml><ToUserName><![CDATA[gh_10f6c3c3ac5a]]></ToUserName>\n"
    "<FromUserName><![CDATA[oyORnuP8q7ou2gfYjqLzSIWZf0rs]]></FromUserName>\n"
    "<CreateTime>1409735668</CreateTime>\n"
    "<MsgType><![CDATA[text]]></MsgType>\n"
    "<Content><![CDATA[abcdteT]]></Content>\n"
    "<MsgId>6054768590064713728</MsgId>\n"
    "</xml>"
)

# Vector C: the mini-program encryptedData sample (also wechatpy's test_wxa_decrypt_message).
C_APPID = "wx4f4bc4dec97d474b"
C_SESSION_KEY, C_IV = "tiihtNczf5v6AKRyjwEUhQ==", "r7BXXKkLb8qrSNn05n0qiA=="
C_ENCRYPTED = (
    "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNP"
    "dbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyx"
    "VLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid"
    "1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEB"
    "vB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVu"
    "nYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew=="
)


def _vector_a_sender() -> CallbackSender:
    return CallbackSender("http://127.0.0.1:9/", A_TOKEN, A_KEY, A_APPID, "gh_10f6c3c3ac5a")


def test_vector_a_signatures_match_tencents() -> None:
    assert sha1_signature(A_TOKEN, A_TIMESTAMP, A_NONCE) == A_SIGNATURE
    assert sha1_signature(A_TOKEN, A_TIMESTAMP, A_NONCE, A_ENCRYPT) == A_MSG_SIGNATURE


def test_vector_a_decrypts_to_tencents_text_message() -> None:
    key = base64.b64decode(A_KEY + "=")
    assert key.hex() == "69b71d79f8218a39259a7a29aabb2dbafc31cb3d35db7e39ebbf3d0010831051"
    assert PrpCrypto(key).decrypt(A_ENCRYPT, A_APPID) == A_PLAINTEXT


def test_sender_renders_pushes_in_tencents_layout() -> None:
    """Re-rendering vector A's fields with the sender's XML writer gives Tencent's bytes."""
    fields = [
        ("ToUserName", "gh_10f6c3c3ac5a"),
        ("FromUserName", "oyORnuP8q7ou2gfYjqLzSIWZf0rs"),
        ("CreateTime", 1409735668),
        ("MsgType", "text"),
        ("Content", "abcdteT"),
        ("MsgId", 6054768590064713728),
    ]
    assert render(fields) == A_PLAINTEXT
    assert len(A_PLAINTEXT.encode()) == 0x118


def test_safe_mode_envelope_opens_with_wechatpy_like_vector_a() -> None:
    """The sender's sealed vector-A message is what a Tencent-compatible server can open."""
    params, body = _vector_a_sender().seal(A_PLAINTEXT, "safe", A_TIMESTAMP, A_NONCE)
    assert params["signature"] == A_SIGNATURE
    assert params["encrypt_type"] == "aes"
    assert params["openid"] == "oyORnuP8q7ou2gfYjqLzSIWZf0rs"
    envelope = xmltodict.parse(body)["xml"]
    assert set(envelope) == {"ToUserName", "Encrypt"}
    crypto = WeChatCrypto(A_TOKEN, A_KEY, A_APPID)
    opened = crypto.decrypt_message(body, params["msg_signature"], A_TIMESTAMP, A_NONCE)
    assert opened == A_PLAINTEXT


def test_compat_mode_keeps_plaintext_fields_beside_encrypt() -> None:
    params, body = _vector_a_sender().seal(A_PLAINTEXT, "compat", A_TIMESTAMP, A_NONCE)
    fields = xmltodict.parse(body)["xml"]
    assert fields["Content"] == "abcdteT" and fields["MsgId"] == "6054768590064713728"
    crypto = WeChatCrypto(A_TOKEN, A_KEY, A_APPID)
    opened = crypto.decrypt_message(body, params["msg_signature"], A_TIMESTAMP, A_NONCE)
    assert opened == A_PLAINTEXT


def test_plain_mode_has_no_aes_parameters() -> None:
    params, body = _vector_a_sender().seal(A_PLAINTEXT, "plain", A_TIMESTAMP, A_NONCE)
    assert body == A_PLAINTEXT.encode()
    assert "encrypt_type" not in params and "msg_signature" not in params


class _FixedRandom(PrpCrypto):
    def get_random_string(self) -> str:
        return "aaaabbbbccccdddd"


def test_vector_b_deterministic_encrypt() -> None:
    key = base64.b64decode("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG=")
    encrypt = _FixedRandom(key).encrypt("我是中文abcd123", "wxb11529c136998cb6").decode()
    assert encrypt == (
        "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    )
    signature = sha1_signature("pamtest", "1409304348", "xxxxxx", encrypt)
    assert signature == "82c962d39941aa48552f90ef55aa323dc620cc10"


def test_vector_c_miniprogram_encrypted_data() -> None:
    data = WeChatWxaCrypto(C_SESSION_KEY, C_IV, C_APPID).decrypt_message(C_ENCRYPTED)
    assert data["openId"] == "oGZUI0egBJY1zhBYw2KhdUfwVJJE"
    assert data["unionId"] == "ocMvos6NjeKLIBqg5Mr9QjxrP1FA"
    assert data["watermark"] == {"timestamp": 1477314187, "appid": C_APPID}
    assert json.dumps(data, ensure_ascii=False)
