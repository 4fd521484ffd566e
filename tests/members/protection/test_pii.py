"""The vault: authenticated encryption under a keyring, blind indexes, key configuration."""

from __future__ import annotations

import base64
import re

import pytest

from app import create_app
from config import ConfigError
from members.protection.pii import PIIError, Vault, key_id_of, vault

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))
INDEX_KEY = bytes(range(64, 96))
CARD = "6217000000000001234"
CONTEXT = "card_holder.card_no"


def b64(key: bytes) -> str:
    return base64.b64encode(key).decode()


@pytest.fixture
def vault_a() -> Vault:
    return Vault([KEY_A], INDEX_KEY)


def test_round_trip_and_token_format(vault_a):
    token = vault_a.encrypt("张三丰 13800138000", CONTEXT)
    assert re.fullmatch(r"v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]+", token)
    assert token.isascii()
    assert vault_a.decrypt(token, CONTEXT) == "张三丰 13800138000"
    assert vault_a.key_id(token) == key_id_of(KEY_A) == vault_a.current_key_id
    assert vault_a.decrypt(vault_a.encrypt("", CONTEXT), CONTEXT) == ""


def test_each_encryption_uses_a_fresh_nonce(vault_a):
    assert vault_a.encrypt(CARD, CONTEXT) != vault_a.encrypt(CARD, CONTEXT)


def test_a_token_opens_only_in_its_own_context(vault_a):
    token = vault_a.encrypt(CARD, CONTEXT)
    with pytest.raises(PIIError, match=r"card_holder\.phone: .*authentication") as caught:
        vault_a.decrypt(token, "card_holder.phone")
    assert CARD not in str(caught.value) and token not in str(caught.value)


@pytest.mark.parametrize("tamper", [
    lambda t: t[:-2] + ("AA" if t[-2:] != "AA" else "BB"),  # ciphertext / tag
    lambda t: t[:12] + ("A" if t[12] != "A" else "B") + t[13:],  # nonce
    lambda t: t[:20],  # truncated
    lambda t: t + "!",  # not base64url
    lambda t: "v2" + t[2:],  # unknown format
    lambda t: t.split(".", 2)[2],  # no header
    lambda t: "v1.00000000." + t.split(".", 2)[2],  # unknown key id
])
def test_tampered_tokens_are_refused(vault_a, tamper):
    token = vault_a.encrypt(CARD, CONTEXT)
    with pytest.raises(PIIError) as caught:
        vault_a.decrypt(tamper(token), CONTEXT)
    assert CARD not in str(caught.value)


@pytest.mark.parametrize("garbage", ["", "plain text", "v1..", "v1.13800138000.abcd", None])
def test_non_tokens_are_refused(vault_a, garbage):
    with pytest.raises(PIIError, match="not a v1 encrypted token"):
        vault_a.decrypt(garbage, CONTEXT)
    with pytest.raises(PIIError):
        vault_a.needs_rotation(garbage)


def test_keyring_encrypts_with_the_first_key_and_decrypts_with_all(vault_a):
    old = vault_a.encrypt(CARD, CONTEXT)
    ring = Vault([KEY_B, KEY_A], INDEX_KEY)
    assert ring.current_key_id == key_id_of(KEY_B)
    assert ring.key_ids == {key_id_of(KEY_A), key_id_of(KEY_B)}
    assert ring.decrypt(old, CONTEXT) == CARD
    assert ring.needs_rotation(old)
    new = ring.encrypt(CARD, CONTEXT)
    assert ring.key_id(new) == key_id_of(KEY_B) and not ring.needs_rotation(new)
    with pytest.raises(PIIError, match=f"unknown key id {key_id_of(KEY_A)}"):
        Vault([KEY_B], INDEX_KEY).decrypt(old, CONTEXT)


def test_blind_index_is_keyed_stable_and_normalised(vault_a):
    index = vault_a.blind_index("card", CARD)
    assert re.fullmatch(r"[0-9a-f]{64}", index)
    # Same index key, other encryption keys: same index, so rotation leaves indexes alone.
    assert Vault([KEY_B], INDEX_KEY).blind_index("card", CARD) == index
    assert vault_a.blind_index("card", "6217 0000-0000 0001 234") == index
    assert vault_a.blind_index("phone", "+86 138-0013-8000") == vault_a.blind_index(
        "phone", "13800138000")
    assert vault_a.blind_index("id_no", "11010519491231002x") == vault_a.blind_index(
        "id_no", "11010519491231002X")
    assert vault_a.blind_index("ip", "2001:DB8:0:0::1") == vault_a.blind_index("ip", "2001:db8::1")
    assert vault_a.blind_index("ip", "::ffff:10.0.0.1") == vault_a.blind_index("ip", "10.0.0.1")
    assert Vault([KEY_A], KEY_B).blind_index("card", CARD) != index


def test_blind_index_differs_per_kind(vault_a):
    value = "13800138000"
    indexes = {kind: vault_a.blind_index(kind, value)
               for kind in ("card", "phone", "id_no", "openid", "ip")}
    assert len(set(indexes.values())) == 5
    with pytest.raises(ValueError, match="unknown blind index kind"):
        vault_a.blind_index("email", value)


def test_fingerprint_is_keyed_and_unambiguous(vault_a):
    digest = vault_a.fingerprint("row", ["a,b", "c"])
    assert digest != vault_a.fingerprint("row", ["a", "b,c"])
    assert digest != vault_a.fingerprint("other", ["a,b", "c"])
    assert digest == Vault([KEY_B], INDEX_KEY).fingerprint("row", ["a,b", "c"])
    assert digest != Vault([KEY_A], KEY_B).fingerprint("row", ["a,b", "c"])


def test_repr_shows_key_ids_only(vault_a):
    shown = repr(Vault([KEY_B, KEY_A], INDEX_KEY))
    assert key_id_of(KEY_A) in shown
    assert b64(KEY_A) not in shown and KEY_A.hex() not in shown


@pytest.mark.parametrize(("data_keys", "index_key", "setting"), [
    (b64(KEY_A)[:-4], b64(INDEX_KEY), "DATA_ENCRYPTION_KEY"),  # 30 bytes
    (b64(bytes(16)), b64(INDEX_KEY), "DATA_ENCRYPTION_KEY"),
    ("not base64!", b64(INDEX_KEY), "DATA_ENCRYPTION_KEY"),
    (f"{b64(KEY_A)},,{b64(KEY_B)}", b64(INDEX_KEY), "DATA_ENCRYPTION_KEY"),
    (f"{b64(KEY_A)},{b64(KEY_A)}", b64(INDEX_KEY), "DATA_ENCRYPTION_KEY"),
    ("", b64(INDEX_KEY), "DATA_ENCRYPTION_KEY"),
    (b64(KEY_A), b64(bytes(16)), "PII_INDEX_KEY"),
    (b64(KEY_A), "", "PII_INDEX_KEY"),
    (b64(KEY_A), b64(KEY_A), "PII_INDEX_KEY"),
])
def test_bad_key_configuration_names_the_setting(data_keys, index_key, setting):
    with pytest.raises(ConfigError, match=setting):
        Vault.from_config({"DATA_ENCRYPTION_KEY": data_keys, "PII_INDEX_KEY": index_key})


def test_keyring_configuration_accepts_spaces_and_urlsafe_base64():
    ring = Vault.from_config({
        "DATA_ENCRYPTION_KEY": f" {base64.urlsafe_b64encode(KEY_B).decode()} , {b64(KEY_A)}",
        "PII_INDEX_KEY": b64(INDEX_KEY),
    })
    assert ring.current_key_id == key_id_of(KEY_B)
    assert ring.key_ids == {key_id_of(KEY_A), key_id_of(KEY_B)}


def test_the_app_refuses_to_start_with_a_bad_key(settings):
    with pytest.raises(ConfigError, match="DATA_ENCRYPTION_KEY"):
        create_app({**settings, "DATA_ENCRYPTION_KEY": b64(bytes(16))})


def test_the_app_holds_one_vault(app):
    with app.app_context():
        assert vault() is app.extensions["pii"]
        token = vault().encrypt(CARD, CONTEXT)
        assert vault().decrypt(token, CONTEXT) == CARD
