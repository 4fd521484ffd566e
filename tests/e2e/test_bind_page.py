"""A follower binds a card on the H5 page in a real (headless) Chromium.

The browser follows WeChat's authorize redirect through the simulator
(WECHAT_OPEN_BASE points at it), so login, CSRF tokens, cookies, the CSP and
the redirects are exercised as a phone would. Needs Debian's ``chromium``
package and the ``playwright`` Python package (the ``test`` extra); the
system Chromium is used, Playwright's own browser downloads never are.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    pytest.skip("needs /usr/bin/chromium (Debian package: chromium)", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs the playwright package (pip install -e '.[test]')")

# The card-holder factories live beside the members tests.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "members"))
from factories import import_holders  # noqa: E402

LAUNCH_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# WeChat's in-app browser on Android announces itself like this.
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/130.0.0.0 Mobile Safari/537.36 MicroMessenger/8.0.50.2701 "
    "NetType/WIFI Language/zh_CN"
)


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_follower_binds_a_card_in_the_browser(browser, live_app, app, sim, sms_inbox,
                                              run_jobs, tmp_path):
    person = import_holders(app, 1)[0]
    context = browser.new_context(user_agent=WECHAT_UA, locale="zh-CN",
                                  viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

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
    assert problems == []  # no CSP violation, no script error
    context.close()
