"""The rate limiter in Firestore (``RateLimiter``): per-user limits shared by every
instance, fixed one-minute windows counted in ``ratelimits/{kind}_{uid}_{window}`` with an
atomic increment (``expires_at`` for TTL)."""

from __future__ import annotations

import hashlib
import math
from datetime import UTC, datetime, timedelta
from typing import Final

from google.cloud import firestore
from google.cloud.firestore_v1 import Increment

from shared.errors import RateLimited
from shared.store.documents import LimitKind

RATELIMITS: Final = "ratelimits"
WINDOW_S: Final = 60


class FirestoreRateLimiter:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def hit(self, kind: LimitKind, uid: str, limit: int, now: datetime) -> None:
        """Count one call; raise ``RateLimited`` (with Retry-After) past ``limit`` a minute."""
        epoch = now.timestamp()
        window = int(epoch // WINDOW_S)
        user = hashlib.sha256(uid.encode()).hexdigest()[:32]
        ref = self._db.collection(RATELIMITS).document(f"{kind}_{user}_{window}")
        window_end = datetime.fromtimestamp((window + 1) * WINDOW_S, UTC)
        ref.set(
            {"count": Increment(1), "expires_at": window_end + timedelta(seconds=WINDOW_S)},
            merge=True,
        )
        count = int(ref.get().get("count"))
        if count > limit:
            retry_after = max(1, math.ceil((window + 1) * WINDOW_S - epoch))
            raise RateLimited(
                f"more than {limit} {kind.replace('_', ' ')} a minute; retry in {retry_after} s",
                retry_after_s=retry_after,
            )
