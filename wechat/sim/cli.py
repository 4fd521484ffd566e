"""`flask --app app wechat-sim`: serve the simulator, or play WeChat against the callback URL.

The account (app ids, secrets, token, AES key, gh_ id, template) comes from the Flask app's
config, so the simulator and the backend always agree on it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import click
import requests
from flask import current_app
from flask.cli import with_appcontext

from .config import CALLBACK_MODES, SimConfig
from .pushes import PushFactory, new_msg_id
from .sender import CallbackSender, SendResult
from .server import SimServer

DEFAULT_CALLBACK_URL = "http://127.0.0.1:5000/wechat/callback"
DEFAULT_OPENID = "oSIMcliUser00000000000000000"
META_KEY = "wechat_sim.options"

# --type → push; each builder gets (factory, openid, --content, --key).
Builder = Callable[[PushFactory, str, str | None, str | None], str]
PUSH_TYPES: dict[str, Builder] = {
    "text": lambda p, o, content, key: p.text(o, content or "hello"),
    "image": lambda p, o, content, key: p.image(o),
    "voice": lambda p, o, content, key: p.voice(o, recognition=content),
    "video": lambda p, o, content, key: p.video(o),
    "shortvideo": lambda p, o, content, key: p.video(o, short=True),
    "location": lambda p, o, content, key: p.location(o, label=content or ""),
    "link": lambda p, o, content, key: p.link(
        o, content or "link", "", key or "https://example.com/"
    ),
    "subscribe": lambda p, o, content, key: p.subscribe(o, scene=key),
    "unsubscribe": lambda p, o, content, key: p.unsubscribe(o),
    "scan": lambda p, o, content, key: p.scan(o, key or "1"),
    "location_event": lambda p, o, content, key: p.location_event(o),
    "click": lambda p, o, content, key: p.click(o, key or "MENU_KEY"),
    "view": lambda p, o, content, key: p.view(o, key or "https://example.com/"),
    "templatesendjobfinish": lambda p, o, content, key: p.template_send_job_finish(
        o, int(key or new_msg_id()), content or "success"
    ),
    "masssendjobfinish": lambda p, o, content, key: p.mass_send_job_finish(
        o, int(key or new_msg_id()), total=1, filtered=1, sent=1, errors=0
    ),
    "subscribe_msg_popup_event": lambda p, o, content, key: p.subscribe_msg_popup(
        o, {key or "TEMPLATE_ID": content or "accept"}
    ),
    "subscribe_msg_change_event": lambda p, o, content, key: p.subscribe_msg_change(
        o, {key or "TEMPLATE_ID": content or "reject"}
    ),
    "subscribe_msg_sent_event": lambda p, o, content, key: p.subscribe_msg_sent(
        o, key or "TEMPLATE_ID", new_msg_id()
    ),
}
# What a push tells the simulator's own state, as (action, kind) of /sim/users/activity, so
# that user/info and the customer-service windows agree with what was sent. A VIEW (a menu
# link) opens no window since mid-2023 (wechat-platform.md §8.1), so it is not mirrored.
USER_MESSAGES = ("text", "image", "voice", "video", "shortvideo", "location", "link")
STATE_ACTIONS: dict[str, tuple[str, str | None]] = {
    **dict.fromkeys(USER_MESSAGES, ("interact", "message")),
    "subscribe": ("subscribe", None),
    "unsubscribe": ("unsubscribe", None),
    "scan": ("interact", "scan"),
    "click": ("interact", "click"),
}


@dataclass(frozen=True)
class GroupOptions:
    host: str
    port: int
    callback_url: str
    callback_mode: str

    @property
    def sim_url(self) -> str:
        return f"http://{self.host}:{self.port}"


def sim_config_from(
    settings: Mapping[str, Any], callback_url: str | None, callback_mode: str = "safe"
) -> SimConfig:
    """The simulated account described by the backend's own settings."""
    template = settings.get("WECHAT_TXN_TEMPLATE_ID")
    return SimConfig(
        oa_app_id=settings["WECHAT_APP_ID"],
        oa_app_secret=settings["WECHAT_APP_SECRET"],
        oa_token=settings["WECHAT_TOKEN"],
        oa_aes_key=settings["WECHAT_AES_KEY"],
        oa_original_id=settings["WECHAT_ORIGINAL_ID"],
        mp_app_id=settings["MINIAPP_APP_ID"],
        mp_app_secret=settings["MINIAPP_APP_SECRET"],
        template_ids=(template,) if template else (),
        callback_url=callback_url,
        callback_mode=callback_mode,  # type: ignore[arg-type]
    )


def _sender(url: str) -> CallbackSender:
    config = current_app.config
    return CallbackSender(
        url,
        config["WECHAT_TOKEN"],
        config["WECHAT_AES_KEY"],
        config["WECHAT_APP_ID"],
        config["WECHAT_ORIGINAL_ID"],
    )


@click.group("wechat-sim", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8081, show_default=True, type=int)
@click.option(
    "--callback-url",
    default=DEFAULT_CALLBACK_URL,
    show_default=True,
    help="Where asynchronous events (TEMPLATESENDJOBFINISH…) are delivered.",
)
@click.option(
    "--callback-mode", type=click.Choice(CALLBACK_MODES), default="safe", show_default=True
)
@click.option("--log-requests", is_flag=True, help="Print one access-log line per request.")
@with_appcontext
@click.pass_context
def wechat_sim_command(
    ctx: click.Context,
    host: str,
    port: int,
    callback_url: str,
    callback_mode: str,
    log_requests: bool,
) -> None:
    """Local WeChat simulator: without a subcommand it serves WeChat's APIs on HOST:PORT."""
    options = GroupOptions(host, port, callback_url, callback_mode)
    ctx.meta[META_KEY] = options
    if ctx.invoked_subcommand is not None:
        return
    config = sim_config_from(current_app.config, callback_url, callback_mode)
    server = SimServer(config, host, port, log_requests=log_requests)
    click.echo(f"WeChat simulator on {server.url} (events → {callback_url}, {callback_mode} mode)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.stop()


@wechat_sim_command.command("send")
@click.option("--url", default=None, help="Callback URL [default: the group's --callback-url]")
@click.option(
    "--mode",
    type=click.Choice(CALLBACK_MODES),
    default=None,
    help="[default: the group's --callback-mode]",
)
@click.option(
    "--type", "push_type", type=click.Choice(sorted(PUSH_TYPES)), default="text", show_default=True
)
@click.option("--from", "openid", default=DEFAULT_OPENID, show_default=True)
@click.option("--content", default=None, help="Text, or the status of job/consent events.")
@click.option("--key", default=None, help="Event key, QR scene, URL, msg id or template id.")
@click.option("--unionid", default=None, help="Recorded on the simulated user with --mirror.")
@click.option(
    "--repeat",
    default=1,
    show_default=True,
    type=int,
    help="Push the same message this many times, as WeChat does when our answer is lost.",
)
@click.option(
    "--deliveries",
    default=1,
    show_default=True,
    type=int,
    help="Deliveries until one is accepted (WeChat makes up to 3).",
)
@click.option(
    "--mirror/--no-mirror",
    default=True,
    show_default=True,
    help="Also tell the running simulator (--host/--port) what the user did.",
)
@click.pass_context
def send_command(
    ctx: click.Context,
    url: str | None,
    mode: str | None,
    push_type: str,
    openid: str,
    content: str | None,
    key: str | None,
    unionid: str | None,
    repeat: int,
    deliveries: int,
    mirror: bool,
) -> None:
    """Push one message or event to the backend like WeChat, and print its reply."""
    options: GroupOptions = ctx.meta[META_KEY]
    sender = _sender(url or options.callback_url)
    xml = PUSH_TYPES[push_type](sender.pushes, openid, content, key)
    if mirror and push_type in STATE_ACTIONS:
        _mirror(options.sim_url, openid, *STATE_ACTIONS[push_type], unionid, key)
    for _ in range(max(1, repeat)):
        result = sender.send(xml, mode or options.callback_mode, deliveries)
        _print_result(result)
        if not result.accepted:
            ctx.exit(1)


@wechat_sim_command.command("verify-url")
@click.option("--url", default=None, help="Callback URL [default: the group's --callback-url]")
@click.option("--echostr", default=None)
@click.pass_context
def verify_url_command(ctx: click.Context, url: str | None, echostr: str | None) -> None:
    """The GET check the MP console makes when the server URL is saved."""
    options: GroupOptions = ctx.meta[META_KEY]
    result = _sender(url or options.callback_url).verify_url(echostr)
    click.echo(f"HTTP {result.status}: {result.body.decode(errors='replace')!r}")
    click.echo("URL verified" if result.ok else f"refused: expected {result.echostr!r}")
    if not result.ok:
        ctx.exit(1)


def _mirror(
    sim_url: str,
    openid: str,
    action: str,
    kind: str | None,
    unionid: str | None,
    scene: str | None,
) -> None:
    """Best effort: a simulator that is not running just misses the update."""
    body = {
        "openid": openid,
        "action": action,
        "kind": kind,
        "unionid": unionid,
        "scene": scene if action == "subscribe" else None,
    }
    try:
        requests.post(f"{sim_url}/sim/users/activity", json=body, timeout=2).raise_for_status()
    except requests.RequestException as failure:
        click.echo(f"(simulator at {sim_url} not updated: {type(failure).__name__})", err=True)


def _print_result(result: SendResult) -> None:
    for number, delivery in enumerate(result.deliveries, 1):
        answer = f"HTTP {delivery.status}" if delivery.status else f"no answer ({delivery.error})"
        click.echo(f"delivery {number}: {answer}")
    if not result.accepted:
        click.echo(f"refused by WeChat: {result.problem}")
    elif result.reply is None:
        click.echo("accepted: no reply (success)")
    else:
        sealed = "encrypted" if result.encrypted else "plaintext"
        click.echo(f"accepted: {sealed} reply {result.reply}")
