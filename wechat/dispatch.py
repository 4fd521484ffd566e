"""The dispatch table: feature packages register handlers by message kind.

Kinds are wechatpy's message types ('text', 'image', 'voice', 'video',
'shortvideo', 'location', 'link') and 'event:' + the event name in lower case
('event:subscribe', 'event:subscribe_scan', 'event:unsubscribe', 'event:scan',
'event:click', 'event:view', 'event:templatesendjobfinish', ...). Handlers of a
kind run in registration order; the first reply a handler returns is the
answer, and later handlers still run for their side effects.

A handler registered ``pure=True`` only composes a reply from the push and
configuration: no database writes, no jobs, no calls out. Kinds whose handlers
are all pure are idempotent (a retry composes the same reply and repeats no
effect), so the callback skips the dedupe claim for them; every other kind is
claimed in Redis before its handlers run.

A handler registered with ``on_every`` runs for every push of any kind, after that kind's
own handlers (so it sees what they added to the session). Its writes must be idempotent
(the same push twice leaves the same rows), so it needs no dedupe claim and leaves pure
kinds pure: for those the callback runs it apart (``note``), in its own unit of work, and
a failure there costs the reply nothing.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from flask import Flask, current_app

from wechat.inbound import Inbound
from wechat.replies import Reply

Handler = Callable[[Inbound], Reply]


class Dispatcher:
    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self._effectful: set[str] = set()
        self._every: list[Handler] = []

    def on(self, *kinds: str, pure: bool = False) -> Callable[[Handler], Handler]:
        """Decorator registering a handler for one or more kinds."""

        def register(handler: Handler) -> Handler:
            for kind in kinds:
                self._handlers[kind].append(handler)
                if not pure:
                    self._effectful.add(kind)
            return handler

        return register

    def on_every(self, handler: Handler) -> Handler:
        """Register ``handler`` for every kind (see the module's docstring)."""
        self._every.append(handler)
        return handler

    def is_pure(self, kind: str) -> bool:
        """True when every handler of ``kind`` only composes a reply."""
        return kind not in self._effectful

    def dispatch(self, inbound: Inbound, *, every: bool = True) -> Reply:
        """The kind's handlers, then (unless ``every`` is False) the ``on_every`` ones."""
        reply: Reply = None
        handlers = self._handlers.get(inbound.kind, [])
        for handler in [*handlers, *self._every] if every else handlers:
            answer = handler(inbound)
            if reply is None:
                reply = answer
        return reply


    def note(self, inbound: Inbound) -> None:
        """Only the ``on_every`` handlers (a pure kind's, after its reply is composed)."""
        for handler in self._every:
            handler(inbound)


def init_app(app: Flask) -> Dispatcher:
    dispatcher = Dispatcher()
    app.extensions["wechat.dispatcher"] = dispatcher
    return dispatcher


def get_dispatcher(app: Flask | None = None) -> Dispatcher:
    """The app's dispatch table, for packages registering their handlers."""
    return (app or current_app).extensions["wechat.dispatcher"]
