"""The idempotency-key store in Firestore (``DedupStore``): ``dedup/{key}``, created if
absent, with ``expires_at`` for the TTL policy (Terraform) — and checked here too, since TTL
deletion can lag by a day."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final

from google.api_core.exceptions import AlreadyExists
from google.cloud import firestore

from shared.store.interfaces import UnitOfWork
from shared.store.storage import batch_of

DEDUP: Final = "dedup"


class FirestoreDedupStore:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def _ref(self, key: str) -> firestore.DocumentReference:
        return self._db.collection(DEDUP).document(key)

    def create_in(
        self, work: UnitOfWork, key: str, value: dict[str, Any], expires_at: datetime
    ) -> None:
        batch_of(work).create(self._ref(key), {"value": value, "expires_at": expires_at})

    def get(self, key: str, now: datetime) -> dict[str, Any] | None:
        snap = self._ref(key).get()
        if not snap.exists or snap.get("expires_at") <= now:
            return None
        value: dict[str, Any] = snap.get("value")
        return value

    def claim(
        self, key: str, value: dict[str, Any], now: datetime, ttl: timedelta
    ) -> dict[str, Any] | None:
        """Create the key with ``value``; None if this call created it, else the value held.

        An expired key is replaced (a new request after the idempotency window).
        """
        try:
            self._ref(key).create({"value": value, "expires_at": now + ttl})
        except AlreadyExists:
            held = self.get(key, now)
            if held is not None:
                return held
            self._ref(key).set({"value": value, "expires_at": now + ttl})
        return None

    def update(self, key: str, value: dict[str, Any]) -> None:
        self._ref(key).update({"value": value})

    def release(self, key: str) -> None:
        self._ref(key).delete()
