"""Followers' answers to the official account's subscription notices, from the callback.

``subscribe_msg_popup_event`` (the follower accepted or rejected templates in the consent
popup of an article or of our H5 page) and ``subscribe_msg_change_event`` (changed it in
WeChat's settings) carry one or several ``List`` entries, each a ``TemplateId`` and a
``SubscribeStatusString`` (``accept`` | ``reject``); wechatpy does not know these events,
so the entries are read from the raw fields (``Inbound.listed``). Each becomes the
``SubscriptionGrant`` of (openid, template): the latest answer (by WeChat's CreateTime)
wins, whatever order the pushes arrive in. The ``subscribe``
channel sends only where it is ``accept``.
"""

from __future__ import annotations

import logging
import re

from sqlalchemy.dialects import postgresql, sqlite

from campaigns.pushes.models import SubscriptionGrant
from core.db import db, utcnow
from wechat.dispatch import Dispatcher
from wechat.inbound import Inbound

log = logging.getLogger(__name__)

STATUSES = frozenset({"accept", "reject"})
# Template ids are WeChat's URL-safe text; longer than the column cannot be one of ours.
TEMPLATE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BLOCKS = {"event:subscribe_msg_popup_event": "SubscribeMsgPopupEvent",
          "event:subscribe_msg_change_event": "SubscribeMsgChangeEvent"}


def answers(inbound: Inbound) -> dict[str, str]:
    """template id → status of the push's entries that are well formed (the last entry
    of a template wins); others are logged and left out."""
    found: dict[str, str] = {}
    for entry in inbound.listed(BLOCKS[inbound.kind]):
        template_id, status = entry.get("TemplateId"), entry.get("SubscribeStatusString")
        if isinstance(template_id, str) and TEMPLATE_ID.fullmatch(template_id) \
                and status in STATUSES:
            found[template_id] = status
        else:
            log.warning("subscription answer ignored: malformed entry",
                        extra={"kind": inbound.kind})
    return found


def on_answer(inbound: Inbound) -> None:
    """Upsert the follower's grant of each template the push answers (the callback
    commits)."""
    found = answers(inbound)
    if not found:
        return
    at = min(inbound.created_at, utcnow())  # when the follower answered, by WeChat
    rows = [{"openid": inbound.openid, "template_id": template_id, "status": status,
             "updated_at": at} for template_id, status in found.items()]
    dialect = postgresql if db.session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(SubscriptionGrant.__table__).values(rows)
    db.session.execute(statement.on_conflict_do_update(
        index_elements=["openid", "template_id"],
        set_={"status": statement.excluded.status, "updated_at": statement.excluded.updated_at},
        # A late or retried push must not undo a newer answer.
        where=statement.excluded.updated_at >= SubscriptionGrant.__table__.c.updated_at))


def register(dispatcher: Dispatcher) -> None:
    dispatcher.on(*BLOCKS)(on_answer)
