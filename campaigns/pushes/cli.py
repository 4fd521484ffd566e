"""``flask --app app pushes list | show ID``: pushes and their progress, from the command line.

Output names pushes, states and counts, never a recipient (openids stay in the CSV, for
staff with the console's viewer role).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from campaigns.console.pages import local_time
from campaigns.pushes import plans, wording
from core.errors import ApiError

pushes_cli = AppGroup("pushes", help="Marketing pushes: list them, show one's progress.")


@pushes_cli.command("list")
@click.option("--state", type=click.Choice(list(wording.STATES)), help="Only pushes in it.")
def list_command(state: str | None) -> None:
    """The newest pushes first: id, state, channel, recipients, name."""
    rows = plans.pushes(state=state)
    if not rows:
        click.echo("no push")
    for push in rows:
        click.echo(f"{push.id:>6}  {push.state:<16} {push.channel:<9} {push.total:>9}  "
                   f"{push.name}")


@pushes_cli.command("show")
@click.argument("push_id", type=int)
def show_command(push_id: int) -> None:
    """Show push PUSH_ID: its settings and where its recipients stand."""
    try:
        push = plans.find(push_id)
    except ApiError:
        raise click.ClickException(f"no push {push_id}") from None
    figures = plans.progress(push)
    click.echo(f"push {push.id} {push.name!r}: {push.state}"
               + (f" ({push.pause_reason})" if push.pause_reason else ""))
    click.echo(f"  channel {push.channel}, audience {push.audience_id}, "
               f"{push.rate_per_s}/s"
               + (f", quiet {push.quiet_from}-{push.quiet_to}" if push.quiet_from else ""))
    click.echo(f"  send at {local_time(push.send_at) or 'once approved'} (Asia/Shanghai); "
               f"created by {push.created_by}, approved by {push.approved_by or '-'}")
    done = figures.total - figures.pending
    share = f"{100 * done / figures.total:.1f}%" if figures.total else "-"
    click.echo(f"  recipients {figures.total}: sent {figures.sent}, skipped {figures.skipped}, "
               f"failed {figures.failed}, pending {figures.pending} ({share} done)")
    if figures.eta_seconds is not None:
        click.echo(f"  eta {figures.eta_seconds} s")
