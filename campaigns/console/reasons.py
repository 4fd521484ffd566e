"""The services' reasons for refusing a value, worded in English for the JSON API, in
Chinese for the console's pages, next to the field they concern.

Each feature keeps its own table (``Reasons``) of the reasons its forms can cause; a reason
not in the table is shown as the service words it, never hidden.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class Reasons:
    """A table of (regular expression over a whole reason, Chinese with ``{0}``, ``{1}``
    for the expression's groups), first match wins."""

    def __init__(self, table: Iterable[tuple[str, str]]) -> None:
        self._table = [(re.compile(pattern), chinese) for pattern, chinese in table]

    def __call__(self, reason: str) -> str:
        """``reason`` in Chinese (as the service words it when no entry matches)."""
        for pattern, chinese in self._table:
            found = pattern.fullmatch(reason)
            if found:
                return chinese.format(*found.groups())
        return reason
