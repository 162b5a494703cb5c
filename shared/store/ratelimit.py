"""The rate limiter in Firestore (``RateLimiter``): per-user (and per-workspace) limits shared
by every instance, in fixed one-minute windows.

Every counted call *creates* its own document ``ratelimits/{kind}_{who}_{window}/
ratelimits/{random}`` (``expires_at`` for TTL: the policy on the ``ratelimits`` collection
group covers both levels), and the window's count is a ``count()`` of that collection,
this call's included: exact, as a single incremented counter was, but no document is
written twice, so the count holds at any rate (DESIGN §10: about one write a second per
document is all Firestore sustains; the per-workspace limit of 6,000 calls a minute on one
counter was 100). A process that has seen a window over its limit refuses the rest of that
window's calls without writing, so past the limit the writes stop (at most one more per
process).
"""

from __future__ import annotations

import hashlib
import math
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from google.cloud import firestore

from shared.errors import RateLimited
from shared.store.documents import LimitKind

RATELIMITS: Final = "ratelimits"
WINDOW_S: Final = 60
# Windows a process remembers as full.
KNOWN_FULL: Final = 10_000


class FirestoreRateLimiter:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client
        self._full: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, kind: LimitKind, uid: str, limit: int, now: datetime) -> None:
        """Count one call; raise ``RateLimited`` (with Retry-After) past ``limit`` a minute."""
        epoch = now.timestamp()
        window = int(epoch // WINDOW_S)
        user = hashlib.sha256(uid.encode()).hexdigest()[:32]
        key = f"{kind}_{user}_{window}"
        if not self._is_full(key):
            window_end = datetime.fromtimestamp((window + 1) * WINDOW_S, UTC)
            calls = self._db.collection(RATELIMITS).document(key).collection(RATELIMITS)
            calls.document(uuid.uuid4().hex).create(
                {"expires_at": window_end + timedelta(seconds=WINDOW_S)}
            )
            if self._count(calls) <= limit:
                return
            self._mark_full(key)
        retry_after = max(1, math.ceil((window + 1) * WINDOW_S - epoch))
        raise RateLimited(
            f"more than {limit} {kind.replace('_', ' ')} a minute; retry in {retry_after} s",
            retry_after_s=retry_after,
        )

    def _count(self, calls: firestore.CollectionReference) -> int:
        """The window's counted calls."""
        aggregation: Any = calls.count(alias="calls")
        [[result]] = aggregation.get()
        return int(result.value)

    def _is_full(self, key: str) -> bool:
        with self._lock:
            return key in self._full

    def _mark_full(self, key: str) -> None:
        with self._lock:
            self._full[key] = None
            while len(self._full) > KNOWN_FULL:
                self._full.popitem(last=False)
