"""What WeChat reports back about template messages we sent."""

from __future__ import annotations

from core.db import db
from members.transactions.alerts import sending
from members.transactions.alerts.models import TemplateJobResult
from wechat.dispatch import Dispatcher
from wechat.inbound import Inbound


def on_template_job_finished(inbound: Inbound) -> None:
    """TEMPLATESENDJOBFINISH: keep WeChat's status against the message id, and move the
    transaction alert sent under it to delivered, refused or failed.

    This event comes once per template message sent, so it stays a merge plus one
    indexed update: a repeat of the same msgid overwrites rather than fails, and
    finds its delivery already moved on. One that beats the sender's own record
    of the msgid is applied by that record (``members.alerts.record_sent``).
    """
    msg_id = str(inbound.data["MsgID"])
    status = str(inbound.data.get("Status") or "")
    db.session.merge(TemplateJobResult(msg_id=msg_id, openid=inbound.openid, status=status))
    sending.on_template_finished(msg_id, status)


def register(dispatcher: Dispatcher) -> None:
    dispatcher.on("event:templatesendjobfinish")(on_template_job_finished)
