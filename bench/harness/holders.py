"""Card holders for the benchmarks: the tests' factory, imported, then bound directly.

The holders are the test suite's (``tests.fixtures.factories``: Luhn-valid cards,
checksummed ID numbers, mobiles), put in the registry by its real importer.
Binding through the API (SMS code, limits) is what bench/bruteforce.py measures;
the other benchmarks need holders that are bound already, so their ``Binding``
rows are inserted directly.
"""

from __future__ import annotations

from collections.abc import Mapping

from app import create_app
from bench.harness import backend
from core.db import db
from members.holders.models import Binding, CardHolder
from members.protection.pii import vault
from tests.fixtures.factories import Holder, import_holders


def seed(env: Mapping[str, str], bindings: list[dict[str, str]]) -> list[Holder]:
    """Schema by the migrations, then one imported holder per entry of ``bindings``.

    Holder ``n`` is bound with ``bindings[n]`` (``Binding`` columns: app, openid,
    unionid); returns the holders in that order.
    """
    app = create_app(backend.settings(env))  # AUTO_MIGRATE builds the schema
    rows = import_holders(app, len(bindings))
    with app.app_context():
        ids = dict(db.session.query(CardHolder.card_index, CardHolder.id).all())
        db.session.add_all(
            Binding(holder_id=ids[vault().blind_index("card", row.card_no)], **binding)
            for row, binding in zip(rows, bindings, strict=True))
        db.session.commit()
        db.engine.dispose()
    return rows
