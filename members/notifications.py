"""What WeChat reports back about template messages we sent."""

from __future__ import annotations

from core.db import db
from members.models import TemplateJobResult
from wechat.dispatch import Dispatcher
from wechat.inbound import Inbound


def on_template_job_finished(inbound: Inbound) -> None:
    """TEMPLATESENDJOBFINISH: keep WeChat's status against the message id.

    This event comes once per template message sent, so it stays a single
    merge: a repeat of the same msgid overwrites rather than fails.
    """
    db.session.merge(TemplateJobResult(
        msg_id=str(inbound.data["MsgID"]), openid=inbound.openid,
        status=str(inbound.data.get("Status") or ""),
    ))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.on("event:templatesendjobfinish")(on_template_job_finished)
