"""Firestore as the stores' storage: a unit of work is one ``WriteBatch`` (atomic in
Firestore, and in the local emulator with its patch: docs/decisions.md), and the readiness
probe is one document read."""

from __future__ import annotations

from typing import Final

from google.api_core.exceptions import AlreadyExists
from google.api_core.retry import Retry
from google.cloud import firestore

from shared.store.interfaces import CreateConflict, UnitOfWork

# Read by the probe; it need not exist (reading a missing document is an answer).
PROBE_DOC: Final = ("health", "probe")


class FirestoreUnitOfWork:
    def __init__(self, client: firestore.Client) -> None:
        self.batch = client.batch()
        self._committed = False

    def commit(self) -> None:
        if self._committed:
            raise RuntimeError("a unit of work commits once")
        self._committed = True
        try:
            self.batch.commit()
        except AlreadyExists as e:
            raise CreateConflict(str(e)) from e


def batch_of(work: UnitOfWork) -> firestore.WriteBatch:
    """The batch a Firestore store stages its writes in."""
    if not isinstance(work, FirestoreUnitOfWork):
        raise TypeError(f"a Firestore store cannot write in a {type(work).__name__}")
    return work.batch


class FirestoreStorage:
    def __init__(self, client: firestore.Client) -> None:
        self._db = client

    def begin(self) -> FirestoreUnitOfWork:
        return FirestoreUnitOfWork(self._db)

    def probe(self, timeout_s: float) -> None:
        doc = self._db.collection(PROBE_DOC[0]).document(PROBE_DOC[1])
        doc.get(retry=Retry(timeout=timeout_s), timeout=timeout_s)
