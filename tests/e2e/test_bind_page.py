"""A follower binds a card on the H5 page in a real (headless) Chromium.

The browser follows WeChat's authorize redirect through the simulator
(WECHAT_OPEN_BASE points at it), so login, CSRF tokens, cookies, the CSP and
the redirects are exercised as a phone would (see tests.fixtures.browser).
"""

from __future__ import annotations

import re

from tests.fixtures.factories import import_holders


def test_follower_binds_a_card_in_the_browser(phone, live_app, app, sim, sms_inbox,
                                              run_jobs, tmp_path):
    person = import_holders(app, 1)[0]
    page = phone.page

    page.goto(f"{live_app}/m/bind")  # -> the simulator's authorize page -> callback -> form
    page.wait_for_url(re.compile(re.escape(live_app) + r"/m/bind(#.*)?$"))
    assert page.locator("#card_no").is_visible()
    # The stylesheet loaded under the CSP (the header's background is a gradient).
    background = page.eval_on_selector(".brand", "e => getComputedStyle(e).backgroundImage")
    assert "gradient" in background

    page.fill("#card_no", person.card_no)
    page.fill("#phone", person.phone)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/m/bind/verify(#.*)?$"))
    assert f"{person.phone[:3]}****{person.phone[-4:]}" in page.content()

    run_jobs()  # real mode: the SMS goes out from an RQ job
    page.fill("#code", sms_inbox.codes_for(person.phone)[-1])
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/m/bind/done(#.*)?$"))

    content = page.content()
    assert "绑定成功" in content and f"**** {person.card_no[-4:]}" in content
    page.screenshot(path=str(tmp_path / "bound.png"), full_page=True)
    assert (tmp_path / "bound.png").stat().st_size > 0
    assert person.card_no not in content and person.phone not in content
    assert phone.problems == []  # no CSP violation, no script error
