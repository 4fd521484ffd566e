"""Card-holder import: all or nothing, idempotent, encrypted at rest, through the CLI too."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from sqlalchemy import func, select, text

from core.db import db
from members.holders import registry
from members.holders.models import CardHolder
from members.holders.registry import ImportRejected, import_holders
from members.protection.pii import vault
from tests.fixtures.factories import HEADER, Holder, holder, holders_csv

BAD_CARD = "6217000000000001235"  # fails Luhn


def _csv(*lines: str) -> io.StringIO:
    return io.StringIO("\n".join(lines) + "\n")


def _count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(CardHolder))


def _import(app, stream):
    with app.app_context():
        report = import_holders(stream)
        db.session.commit()  # the caller owns the import's transaction
        return report


def _rejected(app, stream) -> list[str]:
    with app.app_context(), pytest.raises(ImportRejected) as caught:
        import_holders(stream)
    return [str(error) for error in caught.value.errors]


def _decrypted(row: CardHolder) -> dict[str, str]:
    return {name: vault().decrypt(getattr(row, name), f"card_holder.{name}")
            for name in registry.ENCRYPTED_COLUMNS}


def test_valid_file_is_imported_encrypted_and_indexed(app):
    rows = [holder(n) for n in (1, 2, 3)]
    report = _import(app, holders_csv(rows))
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    with app.app_context():
        keys = vault()
        for expected in rows:
            stored = db.session.scalar(select(CardHolder).where(
                CardHolder.card_index == keys.blind_index("card", expected.card_no)))
            assert _decrypted(stored) == {"card_no": expected.card_no, "name": expected.name,
                                          "phone": expected.phone, "id_no": expected.id_no}
            assert stored.card_last4 == expected.card_no[-4:]
            assert stored.phone_index == keys.blind_index("phone", expected.phone)
            assert stored.id_no_index == keys.blind_index("id_no", expected.id_no)
            assert (stored.tier, stored.city, stored.branch) == ("gold", "广州", "GZ-TH-001")


def test_values_are_normalised_before_storing(app):
    row = holder(1)
    spaced = f"{row.card_no[:4]} {row.card_no[4:]}"
    _import(app, _csv(HEADER, f"{spaced}, {row.name} ,+86 {row.phone},{row.id_no.lower()},"
                              f" gold ,广州,GZ-TH-001"))
    with app.app_context():
        stored = db.session.scalar(select(CardHolder))
        assert _decrypted(stored)["card_no"] == row.card_no
        assert _decrypted(stored)["phone"] == row.phone
        assert stored.card_index == vault().blind_index("card", row.card_no)
    # The same holder written plainly is the same row, unchanged.
    report = _import(app, holders_csv([row]))
    assert (report.created, report.updated, report.unchanged) == (0, 0, 1)


def test_importing_the_same_file_twice_changes_nothing(app):
    rows = [holder(n) for n in range(1, 6)]
    _import(app, holders_csv(rows))
    with app.app_context():
        before = db.session.execute(text("SELECT * FROM card_holder ORDER BY id")).all()
    report = _import(app, holders_csv(rows))
    assert (report.created, report.updated, report.unchanged) == (0, 0, 5)
    with app.app_context():
        assert db.session.execute(text("SELECT * FROM card_holder ORDER BY id")).all() == before


def test_a_changed_row_is_updated_in_place(app):
    rows = [holder(n) for n in (1, 2, 3)]
    _import(app, holders_csv(rows))
    with app.app_context():
        first_id = db.session.scalar(select(CardHolder.id).where(
            CardHolder.card_index == vault().blind_index("card", rows[1].card_no)))
    rows[1] = replace(rows[1], phone="13912345678", tier="platinum")
    report = _import(app, holders_csv([*rows, holder(4)]))
    assert (report.created, report.updated, report.unchanged) == (1, 1, 2)
    with app.app_context():
        stored = db.session.get(CardHolder, first_id)
        assert _decrypted(stored)["phone"] == "13912345678"
        assert stored.phone_index == vault().blind_index("phone", "13912345678")
        assert stored.tier == "platinum"
    assert _count(app) == 4


def test_a_bad_file_stores_nothing_and_reports_every_line(app):
    good = [holder(n) for n in (1, 2, 3)]
    _import(app, holders_csv(good))
    changed = replace(good[0], name="改名")
    errors = _rejected(app, _csv(
        HEADER,
        changed.csv_row(),                                              # line 2: fine
        replace(holder(4), card_no=BAD_CARD).csv_row(),                 # line 3
        holder(5).csv_row(),                                            # line 4: fine
        replace(holder(6), phone="12345", id_no="110105194912310021").csv_row(),  # line 5
        "",                                                             # line 6: blank
        replace(holder(7), tier="").csv_row() + ",extra",               # line 7
        replace(holder(8), city="").csv_row(),                          # line 8
    ))
    assert errors == [
        "line 3: card_no: fails the Luhn check",
        "line 5: phone: must be a mainland China mobile number (11 digits, 13-19)",
        "line 5: id_no: check character does not match",
        "line 7: row: expected 7 columns, found 8",
        "line 8: city: is required",
    ]
    assert _count(app) == 3
    with app.app_context():
        names = {_decrypted(row)["name"] for row in db.session.scalars(select(CardHolder))}
    assert names == {row.name for row in good}


def test_duplicate_card_numbers_within_the_file(app):
    first = holder(1)
    spaced = replace(holder(9), card_no=" ".join([first.card_no[:8], first.card_no[8:]]))
    errors = _rejected(app, holders_csv([first, holder(2), spaced]))
    assert errors == ["line 4: card_no: duplicates the card number of line 2"]
    assert _count(app) == 0


@pytest.mark.parametrize("header", [
    "card_no,name,phone,id_no,tier,city",
    "card_no,name,phone,id_no,tier,branch,city",
    "CARD_NO,name,phone,id_no,tier,city,branch",
    "",
])
def test_the_header_must_be_exact(app, header):
    stream = io.StringIO(header + ("\n" + holder(1).csv_row() if header else ""))
    assert _rejected(app, stream) == [
        "line 1: header: must be exactly card_no,name,phone,id_no,tier,city,branch"]


def test_a_byte_order_mark_and_crlf_are_tolerated(app):
    body = "\ufeff" + "\r\n".join([HEADER, holder(1).csv_row(), holder(2).csv_row()]) + "\r\n"
    assert _import(app, io.StringIO(body, newline="")).created == 2


def test_malformed_csv_is_reported_with_its_line(app):
    errors = _rejected(app, _csv(HEADER, holder(1).csv_row(), 'x,"unterminated,y'))
    assert errors == ["line 3: row: malformed CSV"]


def test_lookups_are_batched(app, monkeypatch):
    monkeypatch.setattr(registry, "BATCH_SIZE", 4)
    rows = [holder(n) for n in range(1, 12)]
    _import(app, holders_csv(rows[:7]))
    report = _import(app, holders_csv(rows))
    assert (report.created, report.updated, report.unchanged) == (4, 0, 7)


def test_nothing_personal_is_stored_in_plaintext(app):
    rows = [holder(n) for n in (1, 2)]
    _import(app, holders_csv(rows))
    with app.app_context():
        dump = repr(db.session.execute(text("SELECT * FROM card_holder")).all())
    for row in rows:
        for secret in (row.card_no, row.card_no[:-4], row.phone, row.id_no, row.name):
            assert secret not in dump
        assert row.card_no[-4:] in dump  # card_last4 is kept for display, by design


# --- through the command line ----------------------------------------------------------

def _run(app, path):
    return app.test_cli_runner().invoke(args=["members", "import", str(path)])


def test_cli_import_prints_counts(app, tmp_path):
    path = tmp_path / "holders.csv"
    path.write_text(holders_csv([holder(1), holder(2)]).getvalue(), encoding="utf-8-sig")
    result = _run(app, path)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created 2, updated 0, unchanged 0"
    assert _run(app, path).output.strip() == "created 0, updated 0, unchanged 2"


def test_cli_errors_name_lines_never_values(app, tmp_path):
    rows: list[Holder] = [holder(1), replace(holder(2), card_no=BAD_CARD),
                          replace(holder(3), phone="23800138000"), holder(1)]
    path = tmp_path / "holders.csv"
    path.write_text(holders_csv(rows).getvalue(), encoding="utf-8")
    result = _run(app, path)
    assert result.exit_code != 0
    assert "line 3: card_no: fails the Luhn check" in result.output
    assert "line 4: phone: must be a mainland China mobile number" in result.output
    assert "line 5: card_no: duplicates the card number of line 2" in result.output
    assert "nothing was imported" in result.output
    for row in rows:
        for secret in (row.card_no, row.phone, row.id_no, row.name):
            assert secret not in result.output
    assert _count(app) == 0


def test_cli_import_of_the_sample_file(app):
    from pathlib import Path

    sample = Path(__file__).parent / "data" / "holders.csv"
    result = _run(app, sample)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "created 5, updated 0, unchanged 0"


def test_import_logs_its_counts_at_info(app, caplog):
    import logging

    from members.holders.registry import import_holders as run_import

    caplog.set_level(logging.INFO, logger="members.holders.registry")
    with app.app_context():
        run_import(holders_csv([holder(1), holder(2)]))
    (record,) = [r for r in caplog.records if r.getMessage() == "card holders imported"]
    assert record.holders_created == 2
