"""The transaction feed as core banking posts it: signed batches of new transactions on a schedule.

One thread keeps the schedule and builds each batch when it is due; a pool of
``connections`` threads posts them, one HTTP session each. A batch waits for a
free connection when the target is slow, and that wait counts in its times: a
target that falls behind is not flattered. The signature is the contract's
(X-Timestamp, X-Signature = HMAC-SHA256 hex of timestamp + "." + body), the
sender's half of what ``members.transactions.feed.verify_signature`` checks.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import requests

FEED_PATH = "/api/transactions"
SHANGHAI = ZoneInfo("Asia/Shanghai")  # core banking's clock
FEED_TIMEOUT = 120.0  # seconds one feed request may take before it counts as unanswered


@dataclass
class Batch:
    """One feed request and what became of it (times are unix seconds)."""

    index: int
    due: float
    txn_ids: list[str]
    handed: float = math.nan  # when the schedule thread handed it to the connections
    sent: float = math.nan
    answered: float = math.nan
    status: int | None = None  # None: no answer (connection error, timeout, never sent)
    accepted: int = 0
    duplicate: int = 0
    error: str = ""


@dataclass(frozen=True)
class Feed:
    """Where and what to post: the app, the secret, the cards, the batch size and pace."""

    url: str
    secret: str
    cards: list[str]
    batch: int
    rate: float

    @property
    def interval(self) -> float:
        return self.batch / self.rate


def items(feed: Feed, prefix: str, index: int, due: float) -> list[dict[str, Any]]:
    """Batch ``index``: new txn_ids, cards in turn, occurred_at = when the batch is due."""
    occurred = datetime.fromtimestamp(due, SHANGHAI).isoformat()
    found = []
    for i in range(feed.batch):
        n = index * feed.batch + i
        credit = n % 10 == 9  # one in ten: money in, no points, no merchant
        found.append({
            "txn_id": f"{prefix}{index:07d}{i:04d}", "card_no": feed.cards[n % len(feed.cards)],
            "amount_fen": 100 + n % 500_000, "currency": "CNY",
            "direction": "credit" if credit else "debit",
            "merchant": "" if credit else "压测咖啡 Bench Coffee",
            "channel": "TRANSFER" if credit else "POS", "occurred_at": occurred,
            "balance_fen": 10**8 - n,
        })
    return found


def signed_headers(secret: str, body: bytes) -> dict[str, str]:
    """The contract's signature: HMAC-SHA256(secret, timestamp + "." + body), hex."""
    timestamp = str(int(time.time()))
    signature = hmac.new(secret.encode(), timestamp.encode() + b"." + body,
                         hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Timestamp": timestamp,
            "X-Signature": signature}


class Poster:
    """Posts batches on ``connections`` threads, one HTTP session per thread."""

    def __init__(self, feed: Feed, connections: int) -> None:
        self.feed = feed
        self.pool = ThreadPoolExecutor(connections, thread_name_prefix="feed")
        self.local = threading.local()

    def submit(self, batch: Batch, body: bytes) -> Future[None]:
        return self.pool.submit(self._post, batch, body)

    def _post(self, batch: Batch, body: bytes) -> None:
        http = getattr(self.local, "http", None) or self._session()
        headers = signed_headers(self.feed.secret, body)  # signed when it leaves
        batch.sent = time.time()
        try:
            response = http.post(self.feed.url + FEED_PATH, data=body, headers=headers,
                                 timeout=FEED_TIMEOUT)
        except requests.RequestException as exc:
            batch.error = type(exc).__name__
            return
        finally:
            batch.answered = time.time()
        batch.status = response.status_code
        if response.status_code == 202:
            answer = response.json()
            batch.accepted, batch.duplicate = answer["accepted"], answer["duplicate"]
        else:
            batch.error = response.text[:200]

    def _session(self) -> requests.Session:
        self.local.http = requests.Session()
        return self.local.http

    def close(self, futures: list[Future[None]], timeout: float) -> None:
        """Wait up to ``timeout`` s for the batches; those not started by then are dropped,
        those in flight are waited for (each at most FEED_TIMEOUT)."""
        wait(futures, timeout=timeout)
        self.pool.shutdown(wait=True, cancel_futures=True)


def run_feed(feed: Feed, prefix: str, seconds: float, connections: int,
             drain: float) -> list[Batch]:
    """Feed batches on schedule for ``seconds``; the batches.

    Batches still waiting for a connection ``drain`` s after the schedule's end are
    dropped (status None, no answer).
    """
    poster = Poster(feed, connections)
    count = max(1, round(seconds / feed.interval))
    start = time.time() + 0.05
    batches: list[Batch] = []
    futures: list[Future[None]] = []
    for index in range(count):
        due = start + index * feed.interval
        pause = due - time.time()
        if pause > 0:
            time.sleep(pause)
        body_items = items(feed, prefix, index, due)
        batch = Batch(index, due, [item["txn_id"] for item in body_items])
        batches.append(batch)
        body = json.dumps(body_items).encode()
        batch.handed = time.time()
        futures.append(poster.submit(batch, body))
    end = start + count * feed.interval
    poster.close(futures, max(0.0, end + drain - time.time()))
    return batches
