"""Settings: defaults that run with nothing set, environment overrides, profiles.

Every value the code reads lives here. A profile is a dict of defaults; the
environment overrides any key it names (typed by the default's type), and
explicit overrides passed to ``create_app`` win over both.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Values that only make sense on a developer's machine or against the simulator.
# Production refuses every one of them (see config/validation.py).
DEV_PLACEHOLDERS: dict[str, str] = {
    "WECHAT_APP_ID": "wxdev0000000000oa",
    "WECHAT_APP_SECRET": "dev-oa-secret",
    "WECHAT_TOKEN": "devtoken",
    "WECHAT_AES_KEY": "devAesKey0devAesKey0devAesKey0devAesKey0abc",
    "WECHAT_ORIGINAL_ID": "gh_dev000000000",
    "MINIAPP_APP_ID": "wxdev0000000000mp",
    "MINIAPP_APP_SECRET": "dev-mp-secret",
    "WECHAT_TXN_TEMPLATE_ID": "dev-txn-template",
    "TXN_FEED_SECRET": "dev-feed-secret",
}

DEFAULT_HELP_TEXT = (
    "您好，这里是联名借记卡服务号。回复“积分”查询积分，回复“绑卡”绑定银行卡，"
    "回复“客服”联系人工客服。"
)

BASE: dict[str, Any] = {
    "APP_ENV": "development",
    "DATABASE_URL": "",  # empty: SQLite file under instance/
    # Folder of the embedded SQLite file and the generated dev secrets; empty: instance/
    # beside app.py. Another folder runs a second, separate local instance.
    "INSTANCE_PATH": "",
    "REDIS_URL": "",  # empty: embedded single-process mode
    "SECRET_KEY": "",  # empty: generated once per dev instance
    # Keyring: comma-separated base64 keys of 32 bytes, the first encrypts, all decrypt.
    "DATA_ENCRYPTION_KEY": "",
    # Key of the blind indexes (keyed hashes) that find personal data; never rotated casually.
    "PII_INDEX_KEY": "",
    **DEV_PLACEHOLDERS,
    "WECHAT_API_BASE": "https://api.weixin.qq.com",
    "WECHAT_MP_BASE": "https://mp.weixin.qq.com",
    "WECHAT_OPEN_BASE": "https://open.weixin.qq.com",
    "SMS_GATEWAY_URL": "",
    # WeChat client behaviour
    "WECHAT_HTTP_TIMEOUT": 5.0,
    # Egress proxy for WeChat calls ("http://proxy:3128"); only this setting sets one, never
    # HTTP(S)_PROXY or .netrc from the environment.
    "WECHAT_HTTP_PROXY": "",
    "WECHAT_RETRY_ATTEMPTS": 3,  # attempts for -1 / HTTP 5xx / timeouts
    "WECHAT_RETRY_BASE_DELAY": 0.2,  # seconds; doubled each attempt, full jitter
    "WECHAT_TOKEN_MARGIN": 120,  # refresh this many seconds before WeChat's expiry
    "WECHAT_TOKEN_LOCK_TIMEOUT": 10.0,
    # callback
    "CALLBACK_MAX_BYTES": 64 * 1024,
    "CALLBACK_TIMESTAMP_WINDOW": 300,  # seconds a signed callback stays acceptable
    "CALLBACK_DEDUPE_TTL": 900,  # > window + WeChat's retry span, so no replay slips through
    "CALLBACK_RETRY_WAIT": 4.0,  # a retry waits this long for the first delivery's reply
    # Plaintext pushes carry a signature over timestamp and nonce only, not over the body:
    # production takes safe (AES) mode only unless this is set explicitly (README, Callback).
    "CALLBACK_PLAINTEXT_ALLOWED": True,
    # {"keyword": "reply text"}, exact match after strip
    "WECHAT_KEYWORD_REPLIES": {
        "积分": "积分余额与明细请在“联名卡”小程序的“我的积分”中查看。",
        "绑卡": "请在“联名卡”小程序或菜单“我的卡”中绑定您的联名借记卡。",
        "客服": "人工客服热线 95500（7×24 小时）。",
    },
    "WECHAT_MENU_REPLIES": {},  # {"EVENT_KEY": "reply text"}
    "WECHAT_HELP_TEXT": DEFAULT_HELP_TEXT,
    # database connections per process: a send job uses ALERT_SEND_THREADS + 1 at once
    "DB_POOL_SIZE": 10,
    # members
    "MEMBER_SESSION_TTL": 2 * 3600,  # seconds a mini-program bearer token lives
    "SMS_TIMEOUT": 5.0,
    "BIND_CODE_TTL": 300,  # seconds an SMS code stays valid
    "BIND_CODE_MAX_TRIES": 5,
    "CARD_LOCK_FAILURES": 10,  # wrong codes for one card within the window lock it
    "CARD_LOCK_WINDOW": 3600,
    "CARD_LOCK_SECONDS": 1800,
    "API_MAX_BYTES": 16 * 1024,
    # -- core-banking transaction feed, POST /api/transactions (members/feed.py)
    # Body cap, checked before the body is read. A typical item is ~250 bytes; the largest
    # the validator accepts (64-char txn_id, 128 Chinese characters of merchant \u-escaped
    # by the sender's serializer at 6 bytes each, every field at its longest) is ~1,200,
    # pretty-printed ~1,300. 1.5 MiB lets any valid batch of 1,000 through (a valid batch
    # refused for size could never be delivered) and bounds what one request buffers.
    # Must stay under MAX_CONTENT_LENGTH.
    "TXN_FEED_MAX_BYTES": 1536 * 1024,
    "TXN_FEED_MAX_ITEMS": 1000,  # the contract's batch limit; more is refused (413)
    # Seconds X-Timestamp may differ from our clock, either way (the contract's 300). A
    # replay inside the window is harmless: txn_id makes it a duplicate.
    "TXN_FEED_WINDOW": 300,
    # Largest amount_fen believed: 10^10 fen = 100 million yuan in one debit-card
    # transaction. Above it the value is a fault upstream (a unit mix-up, an id in the
    # wrong column), and the whole batch is refused rather than alerting a customer to it.
    # It also bounds the points one transaction can earn (see POINTS_RULES).
    "TXN_MAX_AMOUNT_FEN": 10**10,
    # -- points ledger (members/points.py)
    # Integer rules, applied per transaction when it is first stored:
    #   points = (amount_fen // per_fen) * rate-of-channel
    # A debit in `currency` on a channel of `earn` earns that many points; channels not
    # listed (ATM withdrawals, transfers, fees) earn none. A credit in `currency` on a
    # channel of `take_back` (the refund or reversal of an earlier purchase) takes back
    # points at that channel's rate; other credits (salary, transfers in) change nothing.
    # The feed does not say which purchase a refund undoes, so the take-back rate is the
    # standard earning rate. Other currencies' amounts are in their own minor units and
    # neither earn nor take back. The app refuses to start if TXN_MAX_AMOUNT_FEN could
    # earn more points than one ledger entry holds. Campaign multipliers (campaigns/)
    # will scale `earn` rates; they are not configured here.
    "POINTS_RULES": {
        "currency": "CNY",
        "per_fen": 1000,  # one unit = 10 yuan; amounts are floored to whole units
        "earn": {"POS": 1, "ONLINE": 1, "QR": 1},
        "take_back": {"REFUND": 1, "REVERSAL": 1},
    },
    # -- H5 pages in the official account (members/pages.py)
    # Scheme and host the customer's browser sees, e.g. "https://wx.bank.example": the
    # OAuth redirect_uri is built from it. Empty: from the request's Host and scheme, which
    # behind a TLS-terminating proxy are the proxy's view (http, an internal name) or
    # whatever Host a client sent; set it in production so WeChat always gets the one
    # registered "网页授权域名" over https.
    "PUBLIC_BASE_URL": "",
    # Seconds an OAuth login on the H5 pages counts, however active the page: then the
    # page silently asks WeChat again (snsapi_base needs no click). CSRF tokens die with it.
    "H5_LOGIN_MAX_AGE": 30 * 60,
    # Flask's signed session cookie (the H5 pages' login and the console's): JavaScript
    # cannot read it, cross-site subrequests and POSTs do not carry it, and an H5 login's
    # cookie expires after this many idle seconds (the console's lasts as long as the
    # browser, its login as long as CONSOLE_*). Secure (https only) in the production
    # profile; production refuses to start without these three flags.
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,
    "PERMANENT_SESSION_LIFETIME": 15 * 60,
    # -- transaction alerts (members/transactions/alerts/)
    # Our field names → the keyword names of WECHAT_TXN_TEMPLATE_ID, which differ per account
    # and template. Fields: card (masked, last four), amount (yuan), direction, merchant, time
    # (Asia/Shanghai), balance (left out when core banking sent none). A field not named here
    # is not sent; keys with a WeChat type prefix ("thing2") are cut to that type's length.
    "WECHAT_TXN_TEMPLATE_FIELDS": {
        "card": "keyword1", "direction": "keyword2", "amount": "keyword3",
        "merchant": "keyword4", "time": "keyword5", "balance": "keyword6",
    },
    # Mini-program subscribe-message template for holders who do not follow the official
    # account but granted the mini-program transaction notices. Empty: that channel is off
    # and its deliveries fail with a reason rather than call WeChat.
    "MINIAPP_TXN_TEMPLATE_ID": "",
    # The same mapping for it: subscribe templates always have typed keys (thing ≤ 20 chars).
    "MINIAPP_TXN_TEMPLATE_FIELDS": {
        "card": "thing1", "amount": "amount2", "direction": "thing3",
        "merchant": "thing4", "time": "time5",
    },
    # The mini-program page a subscribe message opens; {txn_id} is filled in.
    "MINIAPP_TXN_PAGE": "pages/transactions/detail?txn={txn_id}",
    # The holder's H5 page a template message links to, under PUBLIC_BASE_URL ({txn_id} is
    # filled in). Without PUBLIC_BASE_URL the message carries no link.
    "ALERT_H5_PATH": "/m/transactions/{txn_id}",
    # A resend WeChat could show as a second message (README, "The resend window") says so,
    # in this field, so that the holder reads it as a repeat of the same transaction and
    # never as a second charge. WeChat has hidden `first`/`remark` since 2023: the marker
    # must sit in a shown field.
    "ALERT_RESEND_FIELD": "direction",
    "ALERT_RESEND_MARKER": "【补发提醒·非新交易】",
    # Deliveries per send job, and sends in flight within one job (threads): a job of 50
    # at 8 in flight keeps a worker near WeChat's latency-bound rate without hogging it.
    "ALERT_BATCH_SIZE": 50,
    "ALERT_SEND_THREADS": 8,
    # Claims of one delivery before it fails for good (WeChat unavailable, worker crashes).
    "ALERT_MAX_ATTEMPTS": 5,
    # Seconds before a delivery put back after WeChat stayed unavailable is tried again,
    # doubled per attempt, full jitter. All tries of one delivery stay within WeChat's
    # ~10 min client_msg_id window, so WeChat drops a copy of one that did get through.
    "ALERT_RETRY_BASE_DELAY": 5.0,
    # A delivery in `sending` this long (s) is presumed to have lost its worker and is
    # resent; one `queued` this long lost its job and is enqueued again. It must outlast
    # the longest legitimate chunk, claimed at once and recorded when its last send answers:
    # ALERT_BATCH_SIZE / ALERT_SEND_THREADS = 7 sends, each at worst WECHAT_RETRY_ATTEMPTS
    # timeouts of WECHAT_HTTP_TIMEOUT plus backoff (3 × 5 s + 0.6 s), about 110 s. A crashed
    # chunk is then resent at most STUCK_AFTER + SWEEP_INTERVAL = 150 s (plus queue lag)
    # after its first claim, far inside the unmarked part of WeChat's window (600 - 60 s):
    # lowering these would buy nothing but resends of rows whose worker is merely slow.
    "ALERT_STUCK_AFTER": 120,
    # How often (s) the recovery sweep runs (once per period across all workers).
    "ALERT_SWEEP_INTERVAL": 30,
    # Deliveries one sweep re-drives at most, so a backlog is fed in slices, not at once.
    "ALERT_SWEEP_LIMIT": 10_000,
    # WeChat sends one template message per (openid, client_msg_id) within this many seconds
    # and drops a repeat: `members alerts redrive` leaves alone a message WeChat accepted
    # less than this long ago, and a resend inside it goes unmarked (it cannot show twice).
    "WECHAT_CLIENT_MSG_ID_WINDOW": 600,
    # A resend is unmarked only until this many seconds before WECHAT_CLIENT_MSG_ID_WINDOW
    # ends, counted from the delivery's first claim (WeChat's window opens no earlier). It
    # covers what lies between the decision and WeChat receiving the call: the client's
    # retries (WECHAT_RETRY_ATTEMPTS × WECHAT_HTTP_TIMEOUT, about 15 s), clock differences
    # between our hosts and WeChat's, and WeChat's "about ten minutes".
    "ALERT_RESEND_WINDOW_MARGIN": 60,
    # WeChat's quotas (wechat/quota.py), per account and API. Daily quotas of the send APIs
    # we count against (WeChat's console shows an account's real figures: the template
    # quota grows with the follower count); an API left out is limited only by WeChat.
    "WECHAT_DAILY_QUOTAS": {"message/template/send": 100_000,
                            "message/subscribe/bizsend": 100_000,
                            "message/subscribe/send": 10_000_000},
    # APIs whose quota WeChat resets per calendar month rather than per day (45028).
    "WECHAT_MONTHLY_QUOTA_APIS": ["message/mass/send", "message/mass/sendall"],
    # The share of every daily quota that marketing sends may never use: kept for the
    # transaction alerts, which must still go out after the biggest blast of the day.
    "WECHAT_QUOTA_RESERVED_FOR_ALERTS": 0.2,
    # Seconds after WeChat's reset (midnight Asia/Shanghai) a paused API resumes: WeChat's
    # counters may roll over a little late.
    "WECHAT_QUOTA_RESET_MARGIN": 60,
    # -- benefit campaigns (campaigns/benefits/)
    # Voucher-code uploads (text/plain, one code a line): the body cap, checked before it is
    # read, and the longest code believed. At ~20 bytes a line 1.5 MiB holds ~75,000 codes;
    # a bigger stock goes up in several files. Must stay under MAX_CONTENT_LENGTH.
    "BENEFIT_CODES_MAX_BYTES": 1536 * 1024,
    "BENEFIT_CODE_MAX_CHARS": 128,
    # -- channels and their WeChat codes (campaigns/attribution/)
    # Permanent QR codes the official account may have (WeChat: 100,000 for ever, codes made
    # outside this system included: lower it to keep some for them); the console warns from
    # this share of it on.
    "WECHAT_PERMANENT_QR_LIMIT": 100_000,
    "WECHAT_PERMANENT_QR_WARNING": 0.8,
    # The mini-program page a channel's mini-program code opens (a released page: no leading
    # "/", no query; empty: the home page), the code's width in pixels (280-1280: the widest,
    # for print), whether WeChat checks the page is released, and which version it opens.
    "MINIAPP_CHANNEL_PAGE": "pages/index/index",
    "MINIAPP_CODE_WIDTH": 1280,
    "MINIAPP_CODE_CHECK_PATH": True,
    "MINIAPP_CODE_ENV_VERSION": "release",
    # A CSV import of channels (a branch's whole staff list): the body cap, checked before it
    # is read (~60 bytes a row), and the rows one file may hold.
    "CHANNEL_IMPORT_MAX_BYTES": 1024 * 1024,
    "CHANNEL_IMPORT_MAX_ROWS": 10_000,
    # -- posters of channels (campaigns/attribution/posters.py)
    # The CJK font posters are set in: Debian's fonts-noto-cjk (README's set-up), and the
    # face of the collection (2: Simplified Chinese glyph forms). Missing: posters answer 503.
    "POSTER_FONT_PATH": "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "POSTER_FONT_INDEX": 2,
    # Folder of rendered posters (named by the digest of what shapes them), campaigns'
    # uploaded backgrounds and branch ZIPs; empty: posters/ in the instance folder. Shared by
    # every app server and worker (one volume), as the database is.
    "POSTER_STORE_PATH": "",
    "POSTER_DEFAULT_HEADLINE": "扫码关注公众号 尊享联名卡专属权益",
    # Background uploads (PNG or JPEG): bytes, checked before reading (must stay under
    # MAX_CONTENT_LENGTH), and pixels, checked from the header before decoding (a
    # decompression bomb is a small file of huge dimensions; 12 M pixels = 4000×3000).
    "POSTER_BACKGROUND_MAX_BYTES": 1536 * 1024,
    "POSTER_BACKGROUND_MAX_PIXELS": 12_000_000,
    # Channels per render job of a branch's ZIP: jobs small enough for every worker to get
    # a share, big enough that queueing costs little beside ~40 ms per poster.
    "POSTER_BATCH_CHUNK": 50,
    # -- pushes: what staff may ask of one (campaigns/pushes/plans.py)
    # Messages a second a push may be given (held across all workers together), and what a
    # push gets when its body names none. The cap keeps one push from taking the account's
    # whole API throughput (custom/send and bizsend share it with transaction alerts).
    "PUSH_MAX_RATE_PER_S": 1000,
    "PUSH_DEFAULT_RATE_PER_S": 50,
    # -- pushes: the sending engine (campaigns/pushes/sending.py, chains.py, recovery.py)
    # Chains of send jobs per push (custom, subscribe): how many workers work on one push at
    # once. A mass push has one: WeChat's 60 mass calls a minute, not our workers, bound it.
    "PUSH_CHAINS": 4,
    # Sending threads per job, and recipients a thread claims at a time (at most one
    # second's worth of the push's rate): one statement and one commit a batch, its answers
    # recorded with the next claim. A worker dying leaves at most threads × claim size
    # recipients failed/interrupted (48, within the ALERT_BATCH_SIZE rows a transaction
    # alerts' send job may leave sending), each in a batch in flight.
    "PUSH_SEND_THREADS": 4,
    "PUSH_CLAIM_SIZE": 12,
    # Seconds a send job works before handing over to the next of its chain: the shortest
    # while jobs of a queue ahead (alerts) wait, so an alert waits for a push at most this
    # plus a state check; the longest (each job draws from its upper half, so that the
    # workers of a push do not hand over together) while none do: every hand-over is a
    # pause of that worker (RQ's bookkeeping, the next job's setup).
    "PUSH_JOB_SECONDS": 1.0,
    "PUSH_JOB_MAX_SECONDS": 20.0,
    # How often (s) a job re-reads its push's state (pause, cancel) and quiet hours.
    "PUSH_STATE_CHECK_SECONDS": 0.5,
    # Seconds a chain's Redis key outlives its last sign of life: then the sweep starts a
    # new chain in its place (a killed worker, a flushed Redis).
    "PUSH_CHAIN_TTL": 30,
    # A recipient claimed this long ago (s) and never answered lost its worker: failed /
    # interrupted, never resent (a mass job is asked again under its clientmsgid instead).
    # It must outlast a legitimate send: a few calls, each up to WECHAT_RETRY_ATTEMPTS
    # timeouts, times PUSH_SEND_RETRIES rounds. A send job's slice lasts at most half of it.
    "PUSH_CLAIM_TIMEOUT": 300,
    # WeChat unavailable (-1, 5xx, timeouts) through the client's own retries: this many
    # more rounds, PUSH_RETRY_BASE_DELAY s apart (doubled each), then failed with the errcode.
    "PUSH_SEND_RETRIES": 2,
    "PUSH_RETRY_BASE_DELAY": 1.0,
    # 45011 (WeChat's per-minute limit): wait this long before the next round.
    "PUSH_RATE_LIMITED_DELAY": 60.0,
    # Openids per mass/send call at most (WeChat takes 2 to 10,000; a call also carries at
    # most the push's rate_per_s of them: it takes a token per openid, rate.py), mass
    # messages per follower per calendar month (Asia/Shanghai) and mass calls a minute
    # across all pushes (WeChat's 60, with a margin for sends from WeChat's console).
    "PUSH_MASS_CHUNK": 10_000,
    "PUSH_MASS_MONTHLY_CAP": 4,
    "PUSH_MASS_CALLS_PER_MINUTE": 55,
    # A mass job whose worker died before WeChat's answer was kept is called again under its
    # clientmsgid within this many seconds of its claim (WeChat remembers one for 24 h).
    "PUSH_MASS_RESUBMIT_WITHIN": 20 * 3600,
    # The customer-service window after a follower's last message (8.1: 5 messages in 48 h).
    "PUSH_CUSTOM_WINDOW": 48 * 3600,
    # How often (s) the push sweep runs (once per period across all workers), and the most
    # stale claims it ends in one run.
    "PUSH_SWEEP_INTERVAL": 15,
    "PUSH_SWEEP_LIMIT": 10_000,
    # How often (s) the funnel's facts are refreshed when nobody reads them (each read
    # refreshes them too: this keeps a read's share small).
    "FUNNEL_REFRESH_INTERVAL": 60,
    # jobs
    "JOBS_EAGER": False,  # embedded mode only: run jobs inline (tests)
    "JOBS_EMBEDDED_THREADS": 4,
    # A worker that lost Redis asks again after this many seconds, doubled per failure (with
    # jitter) up to the maximum: it is back at most that long after Redis is.
    "WORKER_REDIS_RETRY_BASE_DELAY": 0.5,
    "WORKER_REDIS_RETRY_MAX_DELAY": 10.0,
    # RQ queues in priority order: a worker takes the next job from the first non-empty one,
    # so transaction alerts never wait behind marketing pushes or housekeeping.
    "RQ_QUEUES": ["alerts", "pushes", "default"],
    # operations
    "LOG_LEVEL": "INFO",
    "AUTO_MIGRATE": True,
    "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
    # -- who the client is, where it is, how often it may try (core/client_ip.py,
    # members/regions.py, members/limits.py)
    # CIDRs (or single addresses) of our own reverse proxies; only they may name the client
    # in X-Forwarded-For. Empty: the TCP peer is the client and the header is ignored.
    "TRUSTED_PROXIES": [],
    # "cidr,region" CSV. The shipped sample is illustrative: production points this at the
    # bank's licensed IP-geolocation table in the same format.
    "REGION_IP_RANGES_FILE": str(Path(__file__).with_name("regions_sample.csv")),
    # Regions of that table that are home. Unlisted addresses and other regions are
    # non-local. "local-dev" is the sample's loopback and private ranges.
    "HOME_REGIONS": ["zhejiang", "hangzhou", "ningbo", "wenzhou", "local-dev"],
    # Non-local clients: "limit" (RATE_LIMITS_NONLOCAL on top of RATE_LIMITS) or "refuse"
    # (403 region_refused): the "isolate non-local access" switch.
    "NONLOCAL_POLICY": "limit",
    # Sliding (moving) windows per action and dimension (ip, openid, card, phone), in the
    # syntax of the `limits` library, several windows separated by ";". Each action's
    # dimensions are what its code supplies: an override tunes the numbers, and the app
    # refuses to start on one that adds or drops a dimension. Set for real customers never
    # to meet them: a binding takes a few tries once; IP windows allow for many customers
    # behind one carrier NAT address. Wrong codes per card are bounded by CARD_LOCK_*.
    "RATE_LIMITS": {
        "login": {"ip": "120/minute;2000/hour"},
        "bind_start": {"openid": "5/hour;10/day", "card": "5/hour;10/day",
                       "phone": "5/hour;10/day", "ip": "60/hour;500/day"},
        "bind_confirm": {"openid": "20/hour;50/day", "ip": "120/hour;1000/day"},
        # Wrong passwords at the console's login form (campaigns/console/staff.py): only
        # failures count. Per account, so a guesser spreading over addresses still meets
        # it; per address, so one spraying many accounts does too. An attacker can lock a
        # known account for at most a day (20 guesses); the person then waits or asks an
        # admin (`limits.reset`).
        "staff_login": {"username": "5/15minute;20/day", "ip": "20/15minute;100/day"},
    },
    # Extra windows for non-local clients, counted apart from and on top of the ones above
    # (a card tried from everywhere still meets RATE_LIMITS). Actions and dimensions: a
    # subset of RATE_LIMITS's.
    "RATE_LIMITS_NONLOCAL": {
        "login": {"ip": "20/minute;200/hour"},
        "bind_start": {"openid": "2/hour;3/day", "card": "2/hour;3/day",
                       "phone": "2/hour;3/day", "ip": "5/hour;10/day"},
        "bind_confirm": {"openid": "6/hour;10/day", "ip": "10/hour;30/day"},
        "staff_login": {"username": "3/15minute;10/day", "ip": "10/15minute;30/day"},
    },
    # -- staff and the console (campaigns/console/)
    # Seconds a bearer token of `flask staff token` lives (90 days); `staff revoke` ends it
    # sooner.
    "STAFF_TOKEN_TTL": 90 * 24 * 3600,
    # Seconds of inactivity after which a console login ends (checked on the server).
    "CONSOLE_IDLE_TIMEOUT": 30 * 60,
    # Seconds a console login lasts at most, however active: a working day.
    "CONSOLE_MAX_AGE": 10 * 3600,
    # Passwords of staff accounts: at least this many characters (and at most 256).
    "STAFF_PASSWORD_MIN_LENGTH": 12,
    # argon2id parameters of staff passwords (memory in KiB): RFC 9106's second
    # recommendation, argon2-cffi's default. A hash made under other parameters is redone
    # at the next successful login; production refuses less than OWASP's minimum.
    "STAFF_PASSWORD_HASH": {"time_cost": 3, "memory_cost": 64 * 1024, "parallelism": 4},
}

PROFILES: dict[str, dict[str, Any]] = {
    "development": {},
    # Tests hash many staff passwords: cheap argon2id parameters (the tests of rehashing
    # change them back and forth anyway).
    "test": {"APP_ENV": "test", "JOBS_EAGER": True, "LOG_LEVEL": "WARNING",
             "STAFF_PASSWORD_HASH": {"time_cost": 1, "memory_cost": 8 * 1024, "parallelism": 1}},
    "production": {"APP_ENV": "production", "AUTO_MIGRATE": False,
                   "CALLBACK_PLAINTEXT_ALLOWED": False, "SESSION_COOKIE_SECURE": True},
}


def _coerce(raw: str, default: Any) -> Any:
    """Type an environment string like the default it replaces."""
    if isinstance(default, bool):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(raw)
    if isinstance(default, float):
        return float(raw)
    if isinstance(default, (list, dict)):
        return json.loads(raw)
    return raw


def load_settings(
    profile: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Build the settings for ``profile`` (default: ``APP_ENV`` or development)."""
    env = os.environ if environ is None else environ
    name = profile or (overrides or {}).get("APP_ENV") or env.get("APP_ENV") or "development"
    if name not in PROFILES:
        raise ValueError(f"unknown APP_ENV {name!r}; expected one of {sorted(PROFILES)}")
    settings = {**BASE, **PROFILES[name]}
    for key, default in list(settings.items()):
        if key in env and key != "APP_ENV":
            settings[key] = _coerce(env[key], default)
    settings.update(overrides or {})
    settings["APP_ENV"] = name
    return settings
