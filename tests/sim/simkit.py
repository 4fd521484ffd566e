"""Shared pieces of the simulator tests: the test account, an API client, a callback receiver."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import requests
from wechatpy.crypto import WeChatCrypto
from wechatpy.utils import check_signature
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from wechat.sim import SimConfig, SimServer
from wechat.sim.server import QuietRequestHandler

OA_APP_ID = "wxsimoa0000000001"
OA_SECRET = "0123456789abcdef0123456789abcdef"
MP_APP_ID = "wxsimmp0000000001"
MP_SECRET = "fedcba9876543210fedcba9876543210"
TOKEN = "simtoken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
ORIGINAL_ID = "gh_sim000000001"
TEMPLATE = "TPL_TXN_ALERT"
SUB_TEMPLATE = "SUB_TPL_NOTICE"
PAGES = ("pages/index/index", "pages/card/bind")

BASE_CONFIG = SimConfig(
    oa_app_id=OA_APP_ID,
    oa_app_secret=OA_SECRET,
    oa_token=TOKEN,
    oa_aes_key=AES_KEY,
    oa_original_id=ORIGINAL_ID,
    mp_app_id=MP_APP_ID,
    mp_app_secret=MP_SECRET,
    template_ids=(TEMPLATE,),
    subscribe_template_ids=(SUB_TEMPLATE,),
    miniapp_pages=PAGES,
    callback_timeout=2.0,
)


class Api:
    """A thin client for one simulator: WeChat calls and control calls."""

    def __init__(self, server: SimServer) -> None:
        self.server = server
        self.url = server.url
        self.http = requests.Session()

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.http.get(self.url + path, params=params, timeout=5)

    def post(self, path: str, body: Any = None, **params: Any) -> requests.Response:
        return self.http.post(self.url + path, json=body, params=params, timeout=5)

    def call(self, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        """GET when there is no body, POST otherwise; the JSON answer."""
        answer = self.get(path, **params) if body is None else self.post(path, body, **params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def token(self, app: str = "oa") -> str:
        appid, secret = (OA_APP_ID, OA_SECRET) if app == "oa" else (MP_APP_ID, MP_SECRET)
        answer = self.call(
            "/cgi-bin/token", grant_type="client_credential", appid=appid, secret=secret
        )
        return answer["access_token"]

    def sim(self, path: str, body: Any = None) -> Any:
        answer = self.post("/sim" + path, body if body is not None else {})
        assert answer.status_code == 200, answer.text
        return answer.json()


class Receiver:
    """A stand-in backend callback URL: checks WeChat's signatures, decrypts, records, replies."""

    def __init__(self) -> None:
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, OA_APP_ID)
        self.pushes: list[dict[str, Any]] = []
        self.reply: Callable[[str], tuple[int, bytes]] = lambda xml: (200, b"success")
        self.arrived = threading.Event()
        self._server = make_server(
            "127.0.0.1", 0, self._wsgi, threaded=True, request_handler=QuietRequestHandler
        )
        self.url = f"http://127.0.0.1:{self._server.server_port}/wechat/callback"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        args = request.args
        check_signature(TOKEN, args["signature"], args["timestamp"], args["nonce"])
        body = request.get_data(as_text=True)
        if args.get("encrypt_type") == "aes":
            xml = self.crypto.decrypt_message(
                body, args["msg_signature"], args["timestamp"], args["nonce"]
            )
        else:
            xml = body
        self.pushes.append({"query": dict(args), "body": body, "xml": xml})
        self.arrived.set()
        status, reply = self.reply(xml)
        return Response(reply, status=status, content_type="text/xml")(environ, start_response)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
