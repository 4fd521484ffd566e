"""Key rotation: new key first in the ring, rotate-key, old key dropped, data still readable."""

from __future__ import annotations

import base64
import os
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import create_app
from core.db import db, utcnow
from members.holders.models import CardHolder, MemberSession
from members.holders.registry import import_holders
from members.protection.pii import Vault, key_id_of, vault
from tests.fixtures.factories import holder, holders_csv

KEY_A, KEY_B, KEY_C = (os.urandom(32) for _ in range(3))
INDEX_KEY = base64.b64encode(os.urandom(32)).decode()
HOLDER_COLUMNS = ("card_no", "name", "phone", "id_no")
SESSION_COLUMNS = ("session_key", "phone")


def ring(*keys: bytes) -> str:
    return ",".join(base64.b64encode(key).decode() for key in keys)


@pytest.fixture
def app_with(app, settings):
    """``app_with(*keys)``: the app restarted with that keyring (same database, same index key).

    Requests ``app`` so the shared clean-up empties the tables afterwards.
    """
    made = []

    def make(*keys: bytes):
        made.append(create_app({**settings, "DATA_ENCRYPTION_KEY": ring(*keys),
                                "PII_INDEX_KEY": INDEX_KEY}))
        return made[-1]

    yield make
    for flask_app in made:
        with flask_app.app_context():
            db.engine.dispose()


def _sessions(count: int) -> None:
    """Mini-program sessions as the login stores them; every other one has a phone."""
    keys = vault()
    for n in range(count):
        db.session.add(MemberSession(
            token_hash=f"{n:064x}", openid=f"oMP{n:05d}",
            session_key=keys.encrypt(f"session-key-{n}", "member_session.session_key"),
            phone=keys.encrypt(f"1390000{n:04d}", "member_session.phone") if n % 2 else None,
            expires_at=utcnow() + timedelta(hours=1),
        ))
    db.session.commit()


def _plaintexts(flask_app) -> dict:
    """Every encrypted value, decrypted with that app's keyring, and the key ids used."""
    with flask_app.app_context():
        keys, values, kids = vault(), {}, set()
        for model, columns in ((CardHolder, HOLDER_COLUMNS), (MemberSession, SESSION_COLUMNS)):
            for row in db.session.scalars(select(model).order_by(model.id)):
                for name in columns:
                    token = getattr(row, name)
                    if token is not None:
                        kids.add(keys.key_id(token))
                        token = keys.decrypt(token, f"{model.__tablename__}.{name}")
                    values[(model.__tablename__, row.id, name)] = token
        return {"values": values, "kids": kids}


def _indexes(flask_app) -> list[tuple]:
    with flask_app.app_context():
        return db.session.execute(select(
            CardHolder.id, CardHolder.card_index, CardHolder.phone_index, CardHolder.id_no_index,
            CardHolder.source_digest,
        ).order_by(CardHolder.id)).all()


def _rotate(flask_app, batch_size: int = 2):
    return flask_app.test_cli_runner().invoke(
        args=["members", "rotate-key", "--batch-size", str(batch_size)])


def test_rotation_moves_everything_to_the_new_key(app_with):
    app_a = app_with(KEY_A)
    with app_a.app_context():
        import_holders(holders_csv([holder(n) for n in range(1, 6)]))
        db.session.commit()
        _sessions(4)
    before = _plaintexts(app_a)
    indexes = _indexes(app_a)
    assert before["kids"] == {key_id_of(KEY_A)}

    app_ba = app_with(KEY_B, KEY_A)
    result = _rotate(app_ba)
    assert result.exit_code == 0, result.output
    assert "card_holder: 5 row(s) to re-encrypt" in result.output
    assert "card_holder: 4/5 re-encrypted (through id" in result.output  # progress per batch
    assert "member_session: 4 row(s) to re-encrypt" in result.output
    assert "done: 9 row(s) re-encrypted" in result.output
    after = _plaintexts(app_ba)
    assert after == {"values": before["values"], "kids": {key_id_of(KEY_B)}}
    assert _indexes(app_ba) == indexes  # blind indexes and digests are not key-dependent

    # The old key can go: everything still opens, and re-importing finds every holder.
    app_b = app_with(KEY_B)
    assert _plaintexts(app_b) == after
    with app_b.app_context():
        report = import_holders(holders_csv([holder(n) for n in range(1, 6)]))
        db.session.commit()
    assert (report.created, report.updated, report.unchanged) == (0, 0, 5)

    # A second run has nothing left to do.
    again = _rotate(app_ba)
    assert again.exit_code == 0 and "done: 0 row(s) re-encrypted" in again.output


def test_an_interrupted_rotation_resumes(app_with):
    app_a = app_with(KEY_A)
    with app_a.app_context():
        import_holders(holders_csv([holder(n) for n in range(1, 6)]))
        db.session.commit()
        # A row under a key nobody has any more: rotation stops there.
        stray = db.session.scalars(select(CardHolder).order_by(CardHolder.id)).all()[3]
        stray.name = Vault([KEY_C], base64.b64decode(INDEX_KEY)).encrypt(
            "某人", "card_holder.name")
        stray_id = stray.id
        db.session.commit()
    plain_name = "某人"

    app_ba = app_with(KEY_B, KEY_A)
    failed = _rotate(app_ba, batch_size=2)
    assert failed.exit_code != 0
    assert f"card_holder id {stray_id}: card_holder.name: token encrypted with unknown key id " \
           f"{key_id_of(KEY_C)}" in failed.output
    assert plain_name not in failed.output
    with app_ba.app_context():
        done = db.session.scalars(select(CardHolder).order_by(CardHolder.id)).all()
        # The first batch was committed; the failing batch was rolled back whole.
        assert [vault().needs_rotation(row.card_no) for row in done] == [
            False, False, True, True, True]
        db.session.get(CardHolder, stray_id).name = vault().encrypt(plain_name,
                                                                   "card_holder.name")
        db.session.commit()

    resumed = _rotate(app_ba, batch_size=2)
    assert resumed.exit_code == 0, resumed.output
    assert "card_holder: 3 row(s) to re-encrypt" in resumed.output
    assert _plaintexts(app_with(KEY_B))["kids"] == {key_id_of(KEY_B)}
