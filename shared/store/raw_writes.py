"""The aggregator's markers, built from the raw protobuf classes.

google-cloud-firestore encodes each write through its proto-plus wrappers: ~27 µs for
creating an empty document; built directly from the protobuf classes, ~2.5 µs, and the
aggregator creates one marker per record (it was 41% of the aggregator's CPU with the
earlier counter merges; docs/benchmarks.md). ``tests/integration/test_raw_writes.py``
proves the write equals the client's own encoding of the same ``create``, and commits it
through the emulator. Anything else goes through the client's own ``WriteBatch`` methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from google.cloud import firestore
from google.cloud.firestore_v1.types import common, document, write

_Write: Final[Any] = write.Write.pb()
_Document: Final[Any] = document.Document.pb()
_Precondition: Final[Any] = common.Precondition.pb()


def _name(ref: firestore.DocumentReference) -> str:
    # The full resource name, as the client itself sends it.
    return str(ref._document_path)


def create_empty(ref: firestore.DocumentReference) -> write.Write:
    """``batch.create(ref, {})``: an empty document that must not exist yet."""
    return _wrap(
        _Write(update=_Document(name=_name(ref)), current_document=_Precondition(exists=False))
    )


def _wrap(raw: Any) -> write.Write:
    wrapped: write.Write = write.Write.wrap(raw)
    return wrapped


def add(batch: firestore.WriteBatch, writes: Sequence[write.Write]) -> None:
    """Append built writes to ``batch`` (the hook the client's own methods append through)."""
    batch._add_write_pbs(list(writes))
