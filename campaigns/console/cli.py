"""``flask --app app staff create | token | revoke``: staff accounts from the command line.

Every command is audited with the actor ``cli``. Passwords come from standard input (one
line; a hidden prompt on a terminal), never from an argument, which shell history and the
process list would keep.
"""

from __future__ import annotations

import sys

import click
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from campaigns.console import audit, roles, staff
from campaigns.console.models import Staff
from campaigns.console.pages import local_time
from core.db import db
from core.errors import ApiError

staff_cli = AppGroup("staff", help="Staff accounts of the console: create, API tokens, revoke.")


def _password() -> str:
    if sys.stdin.isatty():
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return sys.stdin.readline().removesuffix("\n").removesuffix("\r")


def _account(username: str) -> Staff:
    account = staff.find(username)
    if account is None:
        raise click.ClickException(f"no staff account {staff.canonical_username(username)!r}")
    return account


@staff_cli.command("create")
@click.argument("username")
@click.option("--role", required=True, type=click.Choice(roles.ROLES), help="The account's role.")
@click.option("--branch", metavar="CODE", help="The branch code of a manager (managers only).")
def create_command(username: str, role: str, branch: str | None) -> None:
    """Create the account USERNAME; its password is read from standard input (one line)."""
    try:
        account = staff.create(audit.CLI, username, role, _password(), branch=branch)
        db.session.commit()
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    except IntegrityError:  # created by someone else meanwhile
        raise click.ClickException(f"there is already an account {username!r}") from None
    branch_note = f", branch {account.branch}" if account.branch else ""
    click.echo(f"created {account.username} ({account.role}{branch_note})")


@staff_cli.command("token")
@click.argument("username")
def token_command(username: str) -> None:
    """Issue an API token for USERNAME, printed once, alone on the last line."""
    account = _account(username)
    try:
        token, row = staff.issue_token(audit.CLI, account)
    except ApiError as exc:
        raise click.ClickException(exc.message) from None
    db.session.commit()
    click.echo(f"API token of {account.username} ({account.role}), valid until "
               f"{local_time(row.expires_at)} (Asia/Shanghai); it is shown only this once:")
    click.echo(token)


@staff_cli.command("revoke")
@click.argument("username")
def revoke_command(username: str) -> None:
    """Revoke every API token of USERNAME and end its console logins."""
    account = _account(username)
    revoked = staff.revoke(audit.CLI, account)
    db.session.commit()
    click.echo(f"revoked {revoked} token(s) of {account.username}; its console logins ended")
