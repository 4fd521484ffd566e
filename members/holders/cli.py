"""``flask --app app members import | rotate-key``: load card holders; re-encrypt under a new key.

Output names lines, fields, tables, row ids and key ids, never personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from core.db import db
from members.holders import registry
from members.holders.models import CardHolder, MemberSession
from members.protection.pii import FORMAT_VERSION, PIIError, Vault, column_context, vault

# Every column holding a pii token. A new encrypted column must be listed here,
# or rotate-key leaves it under the old key and dropping that key loses it.
ENCRYPTED_COLUMNS: tuple[tuple[type, tuple[str, ...]], ...] = (
    (CardHolder, registry.ENCRYPTED_COLUMNS),
    (MemberSession, ("session_key", "phone")),
)

@click.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@with_appcontext
def import_command(path: Path) -> None:
    """Import card holders from the registry CSV at PATH (all rows or none)."""
    with path.open(encoding="utf-8", newline="") as stream:
        try:
            report = registry.import_holders(stream)
            db.session.commit()  # the whole file, or (on any error below) nothing of it
        except registry.ImportRejected as rejected:
            for error in rejected.errors:
                click.echo(str(error), err=True)
            raise click.ClickException(str(rejected)) from None
        except IntegrityError:
            # Another import inserted the same card meanwhile; this one was rolled back whole.
            raise click.ClickException(
                "the table changed during the import; nothing was imported, run it again"
            ) from None
    if report.created:
        registry.refresh_statistics()
        db.session.commit()
    click.echo(f"created {report.created}, updated {report.updated}, "
               f"unchanged {report.unchanged}")


@click.command("rotate-key")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000),
              help="Rows re-encrypted per committed transaction.")
@with_appcontext
def rotate_key_command(batch_size: int) -> None:
    """Re-encrypt personal data not under the first DATA_ENCRYPTION_KEY key.

    Put the new key first, keep the old ones after it, run this, then drop the
    old keys. Each batch is committed, so an interrupted run just resumes.
    """
    keys = vault()
    click.echo(f"current key {keys.current_key_id}")
    total = 0
    for model, columns in ENCRYPTED_COLUMNS:
        total += rotate_table(keys, model, columns, batch_size, click.echo)
    click.echo(f"done: {total} row(s) re-encrypted")


def rotate_table(keys: Vault, model: type, columns: tuple[str, ...], batch_size: int,
                 echo: Callable[[str], None]) -> int:
    """Re-encrypt the columns of every row of ``model`` not all under the current key."""
    table = model.__tablename__
    prefix = f"{FORMAT_VERSION}.{keys.current_key_id}."
    stale = or_(*(and_(getattr(model, name).is_not(None),
                       ~getattr(model, name).startswith(prefix, autoescape=True))
                  for name in columns))
    pending = db.session.scalar(select(func.count()).select_from(model).where(stale))
    echo(f"{table}: {pending} row(s) to re-encrypt")
    done = skipped = 0
    last_id = 0
    while True:
        rows = db.session.execute(
            select(model.id, *(getattr(model, name) for name in columns))
            .where(model.id > last_id, stale).order_by(model.id).limit(batch_size)
        ).all()
        if not rows:
            break
        try:
            for row in rows:
                if _rotate_row(keys, model, row.id, dict(zip(columns, row[1:], strict=True))):
                    done += 1
                else:
                    skipped += 1
        except PIIError as exc:
            db.session.rollback()
            raise click.ClickException(f"{table} id {row.id}: {exc}") from None
        db.session.commit()
        last_id = rows[-1].id
        echo(f"{table}: {done}/{pending} re-encrypted (through id {last_id})")
    if skipped:
        echo(f"{table}: {skipped} row(s) changed meanwhile and were left; run again")
    return done


def _rotate_row(keys: Vault, model: type, row_id: int, tokens: dict[str, str | None]) -> bool:
    """Re-encrypt one row, only if nobody rewrote it since it was read."""
    changes = {
        name: keys.encrypt(keys.decrypt(token, column_context(model, name)),
                           column_context(model, name))
        for name, token in tokens.items()
        if token is not None and keys.needs_rotation(token)
    }
    if not changes:
        return True
    unchanged = [getattr(model, name) == tokens[name] for name in changes]
    result = db.session.execute(
        update(model).where(model.id == row_id, *unchanged).values(**changes)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1
