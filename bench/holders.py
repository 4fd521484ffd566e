"""Valid card holders for the benchmarks, imported through the real registry importer.

Card numbers pass the Luhn check, ID numbers carry their GB 11643 check
character and phones are mainland mobiles: the checks are the app's own
(``members.identity``), so whatever the importer accepts the API accepts too.
"""

from __future__ import annotations

import io
from dataclasses import astuple, dataclass

from flask import Flask

from members.holders.registry import HEADER, ImportReport, import_holders
from members.protection import identity


@dataclass(frozen=True)
class Holder:
    card_no: str
    name: str
    phone: str
    id_no: str
    tier: str = "gold"
    city: str = "杭州"
    branch: str = "HZ-XH-001"


def with_luhn(partial: str) -> str:
    """``partial`` plus the digit that makes it pass the Luhn check."""
    return next(partial + d for d in "0123456789" if identity.luhn_valid(partial + d))


def holder(n: int) -> Holder:
    """Holder number ``n`` (0 <= n < 10**6): distinct card, phone and ID number."""
    first17 = f"33010619850101{n % 1000:03d}"
    return Holder(
        card_no=with_luhn(f"622848{n:012d}"),
        name=f"压测{n:06d}",
        phone=f"1390571{n % 10**4:04d}" if n < 10**4 else f"137{n:08d}",
        id_no=first17 + identity.id_check_char(first17),
    )


def holders(first: int, count: int) -> list[Holder]:
    return [holder(n) for n in range(first, first + count)]


def csv_text(rows: list[Holder]) -> str:
    lines = [",".join(HEADER)] + [",".join(astuple(row)) for row in rows]
    return "\n".join(lines) + "\n"


def import_rows(app: Flask, rows: list[Holder]) -> ImportReport:
    """Put ``rows`` in the registry with ``members.registry.import_holders``."""
    with app.app_context():
        return import_holders(io.StringIO(csv_text(rows)))
