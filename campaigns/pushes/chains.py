"""The chains of send jobs of a push, and their keys in Redis.

Chain ``k`` of push ``p`` is a run of ``tasks.send_batch`` jobs, one after another, each
named by a fresh token kept in ``pushes:chain:p:k``. Only the job holding the key's
current token works and hands over (compare-and-set): a copy run twice, or a job RQ
re-queued after its worker died while a new chain took its place, finds another token
and does nothing. A working job refreshes its key every state check, so the key
expires ``PUSH_CHAIN_TTL`` seconds after its chain died (a killed worker) and vanishes
with the jobs on a Redis flush; either way the sweep then starts the chain anew
(``fan_out`` starts only the chains whose key is absent).
"""

from __future__ import annotations

import logging
import secrets
from datetime import UTC, datetime

from flask import current_app
from redis import Redis
from redis.exceptions import RedisError

from core.jobs import RQRunner, enqueue

log = logging.getLogger(__name__)

# KEYS[1] a chain's key; ARGV[1] the token expected. ARGV[2] "" deletes the key, else the
# new value (a token) with ARGV[3] seconds to live. 1 when the key held ARGV[1].
_SWAP = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
end
return 1
"""


_GIVE_WAY = "pushes:give-way"  # set while one send job is giving its worker up to alerts


def _key(push_id: int, chain: int) -> str:
    return f"pushes:chain:{push_id}:{chain}"


def _redis() -> Redis:
    return current_app.extensions["redis"]


def _ttl(at: datetime | None) -> int:
    """Seconds a key lives: past the next job's start when it is to run later."""
    ttl = int(current_app.config["PUSH_CHAIN_TTL"])
    if at is not None:
        ttl += max(0, int((at - datetime.now(UTC)).total_seconds()))
    return ttl


def _swap(push_id: int, chain: int, token: str, new: str, ttl: int) -> bool:
    script = _redis().register_script(_SWAP)
    return bool(script(keys=[_key(push_id, chain)], args=[token, new, ttl]))


def _enqueue(push_id: int, chain: int, token: str, at: datetime | None) -> None:
    from campaigns.pushes import tasks  # tasks imports this module

    due = at.timestamp() if at is not None else None
    enqueue(tasks.send_batch, push_id, chain, token, due, queue=tasks.QUEUE, at=at)


def fan_out(push_id: int, count: int, at: datetime | None = None) -> int:
    """Start the chains of ``push_id`` (0 .. count-1) that are not running; how many."""
    started = 0
    for chain in range(count):
        token = secrets.token_hex(8)
        try:
            if not _redis().set(_key(push_id, chain), token, nx=True, ex=_ttl(at)):
                continue
            _enqueue(push_id, chain, token, at)
        except RedisError:
            # The push stays sending in the database; the sweep starts the chain later.
            log.warning("push chain not started", exc_info=True,
                        extra={"push_id": push_id, "chain": chain})
            continue
        started += 1
    return started


def current(push_id: int, chain: int, token: str) -> bool:
    """Whether ``token`` is still this chain's (and keep the key alive if it is)."""
    return _swap(push_id, chain, token, token, _ttl(None))


def hand_over(push_id: int, chain: int, token: str, at: datetime | None = None) -> bool:
    """Queue the chain's next job (at ``at``, or now); False when ``token`` is stale."""
    new = secrets.token_hex(8)
    if not _swap(push_id, chain, token, new, _ttl(at)):
        return False
    _enqueue(push_id, chain, new, at)
    return True


def others_waiting() -> bool:
    """Whether this send job should give its worker up now for jobs waiting in a queue ahead
    of ``pushes`` in RQ_QUEUES (the alerts: one LLEN each), or in embedded mode for any job
    queued for the thread pool. One worker of all gives way per PUSH_STATE_CHECK_SECONDS
    (a key set NX for that long): a waiting alert needs one worker, not every push's; if
    alerts still wait at the next check, another gives way. A lost Redis answers yes: the
    slice ends and the sweep takes over."""
    from campaigns.pushes import tasks  # tasks imports this module

    runner = current_app.extensions["jobs"]
    if not isinstance(runner, RQRunner):
        return any(runner.depth().values())
    names = list(runner.queues)
    try:
        if not any(runner.queues[name].count for name in names[:names.index(tasks.QUEUE)]):
            return False
        period = int(float(current_app.config["PUSH_STATE_CHECK_SECONDS"]) * 1000)
        return bool(_redis().set(_GIVE_WAY, "1", nx=True, px=max(1, period)))
    except RedisError:
        return True


def end(push_id: int, chain: int, token: str) -> None:
    """The chain stops (push paused, cancelled or done): its key goes, so a resume or the
    sweep can start it again at once."""
    _swap(push_id, chain, token, "", 0)
