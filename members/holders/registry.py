"""Card holders from the bank's registry: CSV import, all or nothing, idempotent.

The file is validated completely before anything is written, so an operator
gets every problem of a file in one run, each with its line number, and a bad
file leaves the table exactly as it was. A valid file is upserted in one
transaction by blind index of the card number. Each row's keyed fingerprint
(``source_digest``) tells an unchanged row from a changed one without
decrypting anything, so importing the same file again writes nothing.

Rows of the table that the file doesn't mention are left alone: the import
adds and corrects holders, it never removes one.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Iterator
from dataclasses import astuple, dataclass
from typing import TextIO

from sqlalchemy import insert, select, text, update

from core.db import db
from members.holders.models import CardHolder
from members.protection import identity
from members.protection.pii import Vault, column_context, vault

log = logging.getLogger(__name__)

HEADER = ("card_no", "name", "phone", "id_no", "tier", "city", "branch")
ENCRYPTED_COLUMNS = ("card_no", "name", "phone", "id_no")
# Rows per lookup and bulk write: the IN (...) list stays well under SQLite's and
# PostgreSQL's parameter limits.
BATCH_SIZE = 500
_FINGERPRINT_PURPOSE = "card_holder.row"
_BOM = "\ufeff"


def _label(name: str) -> Callable[[str], str]:
    """Validator of a free-text column, bounded by the column's own length."""
    max_length = CardHolder.__table__.c[name].type.length

    def normalise(raw: str) -> str:
        return identity.normalize_label(name, raw, max_length)

    return normalise


_NORMALISERS: dict[str, Callable[[str], str]] = {
    "card_no": identity.normalize_card,
    "name": identity.normalize_name,
    "phone": identity.normalize_phone,
    "id_no": identity.normalize_id_no,
    "tier": _label("tier"),
    "city": _label("city"),
    "branch": _label("branch"),
}


@dataclass(frozen=True)
class RowError:
    """One problem of the file; says where and what, never the value."""

    line: int
    field: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.reason}"


class ImportRejected(Exception):
    """The file had errors; nothing of it was stored."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} error(s) in the file; nothing was imported")
        self.errors = errors


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0

    @property
    def total(self) -> int:
        return self.created + self.updated + self.unchanged


@dataclass(frozen=True)
class HolderRecord:
    """One valid row, normalised; fields in the CSV's order."""

    card_no: str
    name: str
    phone: str
    id_no: str
    tier: str
    city: str
    branch: str

    def values(self) -> tuple[str, ...]:
        return astuple(self)


# --- parsing ---------------------------------------------------------------------------

class _Unreadable(Exception):
    """The CSV itself can't be read past this point."""

    def __init__(self, error: RowError) -> None:
        super().__init__(str(error))
        self.error = error


def _records(stream: TextIO) -> Iterator[tuple[int, list[str]]]:
    """``(first line, cells)`` of each CSV record; blank lines skipped, BOM dropped."""
    reader = csv.reader(stream, strict=True)
    start = 1
    try:
        for cells in reader:
            if start == 1 and cells and cells[0].startswith(_BOM):
                cells[0] = cells[0][len(_BOM):]
            if cells:
                yield start, cells
            start = reader.line_num + 1
    except csv.Error:
        # csv's own message may quote the data: say where, not what.
        raise _Unreadable(RowError(reader.line_num, "row", "malformed CSV")) from None
    except UnicodeDecodeError:
        raise _Unreadable(RowError(start, "file", "is not UTF-8")) from None


def _normalise_row(line: int, cells: list[str]) -> tuple[dict[str, str], list[RowError]]:
    """The fields that passed, and an error for each that did not."""
    if len(cells) != len(HEADER):
        return {}, [RowError(line, "row", f"expected {len(HEADER)} columns, found {len(cells)}")]
    values: dict[str, str] = {}
    errors: list[RowError] = []
    for name, raw in zip(HEADER, cells, strict=True):
        try:
            values[name] = _NORMALISERS[name](raw)
        except identity.InvalidField as exc:
            errors.append(RowError(line, exc.field, exc.reason))
    return values, errors


def parse_holders(stream: TextIO) -> list[HolderRecord]:
    """Every row of the file, normalised; ImportRejected with every error otherwise."""
    records: list[HolderRecord] = []
    errors: list[RowError] = []
    line_of_card: dict[str, int] = {}
    rows = _records(stream)
    try:
        header = next(rows, None)
        if header is None or header != (1, list(HEADER)):
            raise ImportRejected([RowError(1, "header", f"must be exactly {','.join(HEADER)}")])
        for line, cells in rows:
            values, row_errors = _normalise_row(line, cells)
            card_no = values.get("card_no")
            if card_no is not None and line_of_card.setdefault(card_no, line) != line:
                row_errors.append(RowError(
                    line, "card_no", f"duplicates the card number of line {line_of_card[card_no]}"
                ))
            if row_errors:
                errors.extend(row_errors)
            else:
                records.append(HolderRecord(**values))
    except _Unreadable as exc:
        errors.append(exc.error)
    if errors:
        raise ImportRejected(errors)
    return records


# --- storing ---------------------------------------------------------------------------

def _columns(record: HolderRecord, card_index: str, digest: str, keys: Vault) -> dict:
    """The table row of a record: personal data encrypted, indexes and labels in clear."""
    encrypted = {name: keys.encrypt(getattr(record, name), column_context(CardHolder, name))
                 for name in ENCRYPTED_COLUMNS}
    return {
        **encrypted,
        "card_index": card_index,
        "card_last4": record.card_no[-4:],
        "phone_index": keys.blind_index("phone", record.phone),
        "id_no_index": keys.blind_index("id_no", record.id_no),
        "tier": record.tier,
        "city": record.city,
        "branch": record.branch,
        "source_digest": digest,
    }


def _stored(card_indexes: list[str]) -> dict[str, tuple[int, str]]:
    """``card_index -> (id, source_digest)`` of those already stored, in one query."""
    rows = db.session.execute(
        select(CardHolder.card_index, CardHolder.id, CardHolder.source_digest)
        .where(CardHolder.card_index.in_(card_indexes))
    )
    return {card_index: (holder_id, digest) for card_index, holder_id, digest in rows}


def _store_batch(keys: Vault, batch: list[HolderRecord], report: ImportReport) -> None:
    """Look up a batch by card index with one query, then insert and update it in bulk."""
    keyed = [(record, keys.blind_index("card", record.card_no),
              keys.fingerprint(_FINGERPRINT_PURPOSE, record.values())) for record in batch]
    stored = _stored([card_index for _, card_index, _ in keyed])
    inserts: list[dict] = []
    updates: list[dict] = []
    for record, card_index, digest in keyed:
        found = stored.get(card_index)
        if found is None:
            inserts.append(_columns(record, card_index, digest, keys))
        elif found[1] != digest:
            updates.append({"id": found[0], **_columns(record, card_index, digest, keys)})
    if inserts:
        db.session.execute(insert(CardHolder), inserts)
    if updates:
        db.session.execute(update(CardHolder), updates)
    report.created += len(inserts)
    report.updated += len(updates)
    report.unchanged += len(batch) - len(inserts) - len(updates)


def refresh_statistics() -> None:
    """Let PostgreSQL's planner see the rows an import just committed.

    Until autovacuum analyses the table, the planner takes it for nearly empty
    and scans it once per batched lookup: an import repeated right after the
    first took seconds for 10k rows instead of a fraction of one.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text(f"ANALYZE {CardHolder.__tablename__}"))


def store_holders(records: list[HolderRecord]) -> ImportReport:
    """Upsert validated records by card index, in the caller's transaction: the caller commits
    the whole file at once (or rolls it all back), then may ``refresh_statistics``."""
    keys = vault()
    report = ImportReport()
    # Batches bound the queries' parameters and the memory of encrypted rows in flight.
    for start in range(0, len(records), BATCH_SIZE):
        _store_batch(keys, records[start:start + BATCH_SIZE], report)
    # "created" is a LogRecord attribute: the counts get names of their own.
    log.info("card holders imported", extra={"holders_created": report.created,
                                              "holders_updated": report.updated,
                                              "holders_unchanged": report.unchanged})
    return report


def import_holders(stream: TextIO) -> ImportReport:
    """Import the registry CSV: ImportRejected (nothing stored) or the counts of what changed."""
    return store_holders(parse_holders(stream))

