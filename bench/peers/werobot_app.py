"""Peer (b): WeRoBot 1.13 in safe mode, served by its own WSGI app.

A text handler replies with text; WeRoBot verifies, decrypts, parses and
encrypts. ``robot.wsgi`` is the Bottle app ``robot.run()`` serves; mounting the
robot on Flask with ``werobot.contrib.flask`` measured a few percent slower here.
WeRoBot's default SQLite session store is switched off: it writes the file on
every message (about 700 requests/s here), and the other peer keeps no state
per user either. Serve with ``gunicorn 'bench.peers.werobot_app:app'``;
credentials come from WECHAT_TOKEN, WECHAT_AES_KEY and WECHAT_APP_ID.
"""

from __future__ import annotations

import os

from werobot import WeRoBot
from werobot.messages.messages import TextMessage

robot = WeRoBot(
    token=os.environ["WECHAT_TOKEN"],
    encoding_aes_key=os.environ["WECHAT_AES_KEY"],
    app_id=os.environ["WECHAT_APP_ID"],
)
robot.config["SESSION_STORAGE"] = False


@robot.text
def echo(message: TextMessage) -> str:
    return f"收到：{message.content}"


app = robot.wsgi  # answers on every path, /wechat/callback included
