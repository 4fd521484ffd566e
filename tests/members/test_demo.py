"""`flask --app app demo`: the newcomer's walk, run against the suite's simulator."""

from __future__ import annotations

import socket

import requests

from members.demo import PERSON, TEMPLATE_SEND, demo_holders

STEPS = ("1. Card holders", "2. Follow", "3. Mini-program login", "4. Bind card",
         "5. Linked by unionid", "6. Transaction", "7. Alert", "8. GET /api/members/me")


def _template_messages(sim_url: str) -> list[dict]:
    answer = requests.get(f"{sim_url}/sim/requests", params={"path": TEMPLATE_SEND}, timeout=5)
    answer.raise_for_status()
    return [entry["json"] for entry in answer.json()]


def test_the_demo_walks_from_a_follow_to_an_alert(app, sim):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["demo", "--sim-url", sim.url])
    assert first.exit_code == 0, first.output
    output = first.output
    positions = [output.index(step) for step in STEPS]
    assert positions == sorted(positions)
    assert "created 3, updated 0, unchanged 0" in output
    assert "welcome reply: " in output
    walker = demo_holders()[0]
    assert f"bound, card **** {walker.card_no[-4:]}" in output
    assert "points 12" in output
    # Masked only: no card number or phone of any demo holder is printed whole.
    for record in demo_holders():
        assert record.card_no not in output and record.phone not in output

    (message,) = _template_messages(sim.url)
    assert message["touser"] == PERSON.oa_openid
    values = {field["value"] for field in message["data"].values()}
    assert {f"**** {walker.card_no[-4:]}", "128.00元"} <= values
    for value in values:
        assert value in output

    # Again on the same database: the holders are unchanged, the new transaction alerts.
    second = runner.invoke(args=["demo", "--sim-url", sim.url])
    assert second.exit_code == 0, second.output
    assert "created 0, updated 0, unchanged 3" in second.output
    assert "points 24" in second.output
    assert len(_template_messages(sim.url)) == 2


def test_without_a_simulator_it_says_how_to_start_one(app):
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = app.test_cli_runner().invoke(args=["demo", "--sim-url", f"http://127.0.0.1:{port}"])
    assert result.exit_code == 1
    assert f"no WeChat simulator answers at http://127.0.0.1:{port}" in result.output
    assert "flask --app app wechat-sim --port 8081" in result.output
