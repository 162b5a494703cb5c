"""Results kept by the very rows they were computed from (the read side's memo).

The store hands out a past day's decoded rollups as the same objects until its document is
rewritten (``shared.store.usage.DecodedDays``), and every question on a workspace reads
them again: what is computed from one day's rows (its summaries, its rows at a price book)
is kept and reused while the same row objects come again. An entry is found by the first
row's identity and the count, and used only if every row is the very object it was made
of (rows are frozen models: the same object is the same figures). The memo holds the rows
too, so no other object can take their identity while the entry lives.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from operator import is_
from typing import Any, Generic, TypeVar

_T = TypeVar("_T")


class RowsMemo(Generic[_T]):
    """``make(rows)`` by ``(tag, rows)``, least recently used out first, bounded by the rows
    the entries hold. ``tag``: what else the result depends on (a price book)."""

    def __init__(self, capacity_rows: int) -> None:
        self._capacity = capacity_rows
        self._rows = 0
        self._entries: OrderedDict[tuple[Hashable, int, int], tuple[Sequence[Any], _T]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def of(
        self, rows: Sequence[Any], make: Callable[[Sequence[Any]], _T], tag: Hashable = None
    ) -> _T:
        if not rows:
            return make(rows)
        key = (tag, id(rows[0]), len(rows))
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and all(map(is_, entry[0], rows)):
                self._entries.move_to_end(key)
                return entry[1]
        made = make(rows)
        if len(rows) <= self._capacity:
            with self._lock:
                old = self._entries.pop(key, None)
                self._rows += len(rows) - (0 if old is None else len(old[0]))
                self._entries[key] = (tuple(rows), made)
                while self._rows > self._capacity:
                    _, (evicted, _) = self._entries.popitem(last=False)
                    self._rows -= len(evicted)
        return made
