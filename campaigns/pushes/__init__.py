"""Audiences and scheduled pushes: who should hear about a benefit, the channel WeChat
allows for it, four-eyes approval, quiet hours, one global rate, exactly once per
recipient, progress and delivery reports."""

from __future__ import annotations

from flask import Flask

from campaigns.pushes import models  # noqa: F401  (the tables, for migrations and queries)


def init_app(app: Flask) -> None:
    """Blueprints, callback handlers and CLI of pushes (wired as they are built)."""
