"""A small world of followers and holders for the audience tests: each follower chosen to
be inside or outside one part of a filter.

=========  ==========  ======  =========  ===============================  ===============
openid     subscribed  scene   unionid    bound                            active (hours)
=========  ==========  ======  =========  ===============================  ===============
oGoldGZ    yes         ch_a    uGoldGZ    own OA binding: gold, 广州, GZ1   1
oPlatSZ    yes         ch_b    uPlatSZ    via unionid (mini-program): plat  30
                                          深圳, SZ1
oTwoBind   yes         ch_a    uTwoBind   own OA + mini-program: gold, 广州  (never)
oGoneGZ    no          ch_a    —          own OA binding: classic, 广州     1
oFree1     yes         ch_a    uFree1     no (an unbound old binding)       1
oFree2     yes         —       —          no                               200
=========  ==========  ======  =========  ===============================  ===============
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from flask import Flask

from core.db import db, utcnow
from members.holders.models import Binding, CardHolder, Follower
from members.holders.registry import import_holders
from tests.fixtures.factories import holder, holders_csv

GOLD_GZ, PLAT_SZ, TWO_BIND, GONE_GZ, FREE1, FREE2 = (
    "oGoldGZ00000000000000000001", "oPlatSZ00000000000000000001",
    "oTwoBind0000000000000000001", "oGoneGZ00000000000000000001",
    "oFree1000000000000000000001", "oFree2000000000000000000001")
EVERYONE = {GOLD_GZ, PLAT_SZ, TWO_BIND, GONE_GZ, FREE1, FREE2}


def build_world(app: Flask) -> dict[str, int]:
    """The table above, in the database; the ids of the four holders by follower."""
    people = [replace(holder(1), tier="gold", city="广州", branch="GZ1"),
              replace(holder(2), tier="platinum", city="深圳", branch="SZ1"),
              replace(holder(3), tier="gold", city="广州", branch="GZ2"),
              replace(holder(4), tier="classic", city="广州", branch="GZ1"),
              replace(holder(5), tier="platinum", city="北京", branch="BJ1")]
    now = utcnow()
    with app.app_context():
        import_holders(holders_csv(people))
        db.session.flush()
        ids = {row.card_last4: row.id for row in db.session.query(CardHolder)}
        by = [ids[person.card_no[-4:]] for person in people]

        def follower(openid, subscribed, scene, unionid, hours):
            db.session.add(Follower(
                openid=openid, subscribed=subscribed, first_scene=scene, unionid=unionid,
                last_interaction_at=None if hours is None else now - timedelta(hours=hours)))

        follower(GOLD_GZ, True, "ch_a", "uGoldGZ", 1)
        follower(PLAT_SZ, True, "ch_b", "uPlatSZ", 30)
        follower(TWO_BIND, True, "ch_a", "uTwoBind", None)
        follower(GONE_GZ, False, "ch_a", None, 1)
        follower(FREE1, True, "ch_a", "uFree1", 1)
        follower(FREE2, True, None, None, 200)
        db.session.add_all([
            Binding(holder_id=by[0], app="oa", openid=GOLD_GZ, unionid="uGoldGZ"),
            Binding(holder_id=by[1], app="miniapp", openid="mPlatSZ", unionid="uPlatSZ"),
            Binding(holder_id=by[2], app="oa", openid=TWO_BIND, unionid="uTwoBind"),
            Binding(holder_id=by[2], app="miniapp", openid="mTwoBind", unionid="uTwoBind"),
            Binding(holder_id=by[3], app="oa", openid=GONE_GZ),
            # FREE1 was bound to holder 5 once, and unbound.
            Binding(holder_id=by[4], app="oa", openid=FREE1, unionid="uFree1",
                    unbound_at=now - timedelta(days=1)),
        ])
        db.session.commit()
    return {GOLD_GZ: by[0], PLAT_SZ: by[1], TWO_BIND: by[2], GONE_GZ: by[3]}
