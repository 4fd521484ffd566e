"""``flask --app app members alerts ...``: one transaction's alerts, re-driving, pauses.

Output names deliveries, states and errcodes, never personal data (cards as ``**** 1234``).
"""

from __future__ import annotations

from datetime import datetime

import click
from flask.cli import AppGroup

from core.db import db
from members.protection.audit import parse_since
from members.protection.masking import mask_card
from members.transactions.alerts import recovery, sending
from members.transactions.alerts.content import local_time, yuan
from members.transactions.alerts.models import Delivery

alerts_cli = AppGroup("alerts", help="Transaction alerts: history, re-driving failures, pauses.")


@alerts_cli.command("show")
@click.argument("txn_id")
def alerts_show_command(txn_id: str) -> None:
    """Show the transaction TXN_ID and where each of its alerts stands."""
    try:
        txn, deliveries = recovery.history(txn_id)
    except LookupError:
        raise click.ClickException(f"no transaction {txn_id}") from None
    click.echo(f"transaction {txn.txn_id}: card {mask_card(txn.card_last4)}, {txn.direction} "
               f"{yuan(txn.amount_fen, txn.currency)}, at {local_time(txn.occurred_at)} "
               f"(Asia/Shanghai), received {_at(txn.received_at)}")
    if not deliveries:
        click.echo("no alert: the card's holder is bound to no WeChat account")
    for delivery, result in deliveries:
        click.echo(f"delivery {delivery.id} ({delivery.channel}): {delivery.state}"
                   f"{_resend_note(delivery)}, attempts {delivery.attempts}")
        for label, value in (("created", _at(delivery.created_at)),
                             ("first claimed", _at(delivery.first_claimed_at)),
                             ("sent", _at(delivery.sent_at)), ("msgid", delivery.msgid),
                             ("finished", _at(delivery.finished_at)),
                             ("errcode", delivery.errcode), ("error", delivery.error),
                             ("last change", _at(delivery.updated_at))):
            if value is not None:
                click.echo(f"  {label}: {value}")
        if result is not None:
            click.echo(f"  WeChat's report: {result.status} at {_at(result.received_at)}")


def _resend_note(delivery: Delivery) -> str:
    """Whether this is a resend and, once WeChat took it, whether the message said so."""
    if not delivery.resend:
        return ""
    if delivery.msgid is None:
        return " (resend)"
    return " (resend, marked)" if delivery.marked else " (resend, unmarked)"


def _at(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="seconds") if moment else None


@alerts_cli.command("redrive")
@click.option("--since", callback=parse_since, metavar="ISO",
              help="Only alerts failed at or after this time (UTC unless it carries an offset).")
@click.option("--errcode", type=int, help="Only alerts failed with this WeChat errcode.")
@click.option("--dry-run", is_flag=True, help="Count them, change nothing.")
def alerts_redrive_command(since: datetime | None, errcode: int | None, dry_run: bool) -> None:
    """Send failed alerts again."""
    report = recovery.redrive(since=since, errcode=errcode, dry_run=dry_run)
    db.session.commit()
    verb = "would re-drive" if dry_run else "re-driven"
    click.echo(f"{verb}: {len(report.ids)} alert(s)")
    if report.too_recent:
        click.echo(f"left alone: {report.too_recent} accepted by WeChat too recently to be "
                   "sent again under the same client_msg_id; run again later")


@alerts_cli.command("resume")
@click.argument("channel", type=click.Choice(sorted(sending.CHANNELS)))
def alerts_resume_command(channel: str) -> None:
    """Lift CHANNEL's quota pause now (WeChat raised the quota); the sweep sends its backlog."""
    click.echo(f"{channel}: {'resumed' if sending.resume(channel) else 'was not paused'}")
