"""Valid card holders for tests: Luhn-correct cards, checksummed ID numbers, mobiles."""

from __future__ import annotations

import io
from dataclasses import dataclass

from flask import Flask

ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
ID_CHECK = "10X98765432"
HEADER = "card_no,name,phone,id_no,tier,city,branch"


def luhn_complete(partial: str) -> str:
    """``partial`` plus the Luhn check digit."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        digit = int(char)
        if position % 2 == 0:  # doubled: they sit at odd positions once the check digit is added
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return partial + str((10 - total % 10) % 10)


def id_complete(first17: str) -> str:
    """A resident ID number: 17 digits plus the GB 11643 check character."""
    total = sum(int(d) * w for d, w in zip(first17, ID_WEIGHTS, strict=True))
    return first17 + ID_CHECK[total % 11]


@dataclass(frozen=True)
class Holder:
    card_no: str
    name: str
    phone: str
    id_no: str
    tier: str = "gold"
    city: str = "广州"
    branch: str = "GZ-TH-001"

    def csv_row(self) -> str:
        return ",".join([self.card_no, self.name, self.phone, self.id_no, self.tier,
                         self.city, self.branch])


def holder(n: int) -> Holder:
    return Holder(
        card_no=luhn_complete(f"621700{n:012d}"),
        name=f"测试{n:03d}",
        phone=f"1380013{n:04d}",
        id_no=id_complete(f"44010619900101{n % 1000:03d}"),
    )


def holders_csv(rows: list[Holder]) -> io.StringIO:
    return io.StringIO("\n".join([HEADER, *(row.csv_row() for row in rows)]) + "\n")


def import_holders(app: Flask, count: int) -> list[Holder]:
    """Put ``count`` holders in the registry through the real importer."""
    from members.holders.registry import import_holders as run_import

    rows = [holder(n) for n in range(1, count + 1)]
    with app.app_context():
        run_import(holders_csv(rows))
    return rows
