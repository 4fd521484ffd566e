"""Jobs of the holders package: each owns its unit of work and commits it."""

from __future__ import annotations

from core.db import db
from members.holders import followers, sms
from wechat import clients


def fetch_unionid(openid: str) -> None:
    """Store the follower's unionid from WeChat's user/info (enqueued on every follow)."""
    followers.store_unionid(openid, clients.official_account().user.get(openid))
    db.session.commit()


def deliver_sms(sealed: str) -> None:
    """Post one sealed SMS to the bank's platform (enqueued after the request's commit)."""
    sms.deliver(sealed)
