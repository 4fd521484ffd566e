"""The alert's link in a real (headless) Chromium: login round trip, page, CSP, no card number."""

from __future__ import annotations

import re

from core.db import db
from members.holders.models import Binding, CardHolder
from tests.fixtures.alerts import queue_alerts, txn_id_of
from tests.fixtures.factories import holder
from wechat.sim.config import SimConfig

# Who the simulator's authorize page logs in when the browser names nobody.
FOLLOWER = SimConfig.default_oauth_openid


def test_the_alerts_link_in_the_browser(phone, live_app, app, sim):
    (delivery_id,) = queue_alerts(app, openid=FOLLOWER)
    txn_id = txn_id_of(app, delivery_id)
    with app.app_context():
        owner = db.session.query(CardHolder).one()
        db.session.add(Binding(holder_id=owner.id, app="oa", openid=FOLLOWER))
        db.session.commit()
    page = phone.page

    # -> the simulator's authorize page (as this follower) -> callback -> back to the link
    page.goto(f"{live_app}/m/transactions/{txn_id}")
    page.wait_for_url(re.compile(re.escape(f"{live_app}/m/transactions/{txn_id}") + "(#.*)?$"))
    content = page.content()
    assert "交易详情" in content and "123.45元" in content and "Example Coffee" in content
    assert "首次提醒" in content
    assert f"**** {holder(1).card_no[-4:]}" in content
    assert holder(1).card_no not in content
    background = page.eval_on_selector(".brand", "e => getComputedStyle(e).backgroundImage")
    assert "gradient" in background  # the stylesheet loaded under the CSP
    assert phone.problems == []
