"""Card holders and what is sent to them, in three sub-domains.

- ``protection``: identity rules, the PII vault, masking, the audit trail, rate limits,
  regions: what every other part leans on to keep personal data safe.
- ``holders``: the registry, WeChat users, login, binding, the H5 pages' shell.
- ``transactions``: the core-banking feed, points, the transaction page, and
  ``transactions.alerts``, the WeChat alerts of each transaction.

``members`` never imports ``campaigns``; ``campaigns`` may call ``members`` services.
``demo`` (``flask --app app demo``) walks a newcomer from a follow to an alert against the
WeChat simulator.
"""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from members import demo, holders, protection, transactions

members_cli = AppGroup("members", help="Card holders: registry import, encryption keys, "
                                       "audit trail, transaction alerts.")


def init_app(app: Flask) -> None:
    protection.init_app(app, members_cli)
    holders.init_app(app, members_cli)
    transactions.init_app(app, members_cli)
    app.cli.add_command(members_cli)
    app.cli.add_command(demo.demo_command)
