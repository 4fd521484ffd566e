"""WeChat alerts of card transactions: delivery rows, content, sending, recovery, reports."""

from __future__ import annotations

from flask import Flask
from flask.cli import AppGroup

from core import schedule
from members.transactions.alerts import cli, reports, tasks
from wechat.dispatch import get_dispatcher


def init_app(app: Flask, group: AppGroup) -> None:
    schedule.register(app, tasks.PERIODIC)
    group.add_command(cli.alerts_cli)
    reports.register(get_dispatcher(app))
