"""The aggregator's two shapes of write, built from the raw protobuf classes.

google-cloud-firestore encodes each write through its proto-plus wrappers: ~27 µs for
creating an empty document, ~460 µs for a merge of 30 increments. Built directly from the
protobuf classes they cost ~2.5 and ~46 µs; before, that encoding was 41% of the
aggregator's CPU (py-spy, docs/benchmarks.md). ``tests/integration/test_raw_writes.py``
proves each write equals the client's own encoding of the same ``create``/``set``, and
commits them through the emulator.

Only these two shapes, and only flat field names (the rollups store histogram buckets as
top-level fields): anything else goes through the client's own ``WriteBatch`` methods.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from google.cloud import firestore
from google.cloud.firestore_v1.types import common, document, write

_Write: Final[Any] = write.Write.pb()
_Document: Final[Any] = document.Document.pb()
_Value: Final[Any] = document.Value.pb()
_Precondition: Final[Any] = common.Precondition.pb()
_Mask: Final[Any] = common.DocumentMask.pb()
_Transform: Final[Any] = write.DocumentTransform.FieldTransform.pb()

# A field name that is its own field path (no quoting), as the rollups' names all are.
_PLAIN_FIELD: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _name(ref: firestore.DocumentReference) -> str:
    # The full resource name, as the client itself sends it.
    return str(ref._document_path)


def _plain(name: str) -> str:
    if not _PLAIN_FIELD.fullmatch(name):
        raise ValueError(f"field {name!r} needs quoting: write it with the client's own set()")
    return name


def _value(value: str | None) -> Any:
    return _Value(null_value=0) if value is None else _Value(string_value=value)


def create_empty(ref: firestore.DocumentReference) -> write.Write:
    """``batch.create(ref, {})``: an empty document that must not exist yet."""
    return _wrap(
        _Write(update=_Document(name=_name(ref)), current_document=_Precondition(exists=False))
    )


def merge_counters(
    ref: firestore.DocumentReference,
    identity: Mapping[str, str | None],
    increments: Mapping[str, int],
    minimums: Mapping[str, int],
) -> write.Write:
    """``batch.set(ref, {**identity, name: Increment(n), name: Minimum(v)}, merge=True)``."""
    transforms = [
        *(
            _Transform(field_path=_plain(k), increment=_Value(integer_value=n))
            for k, n in increments.items()
        ),
        *(
            _Transform(field_path=_plain(k), minimum=_Value(integer_value=v))
            for k, v in minimums.items()
        ),
    ]
    transforms.sort(key=lambda t: t.field_path)  # field-path order, as the client sends them
    return _wrap(
        _Write(
            update=_Document(
                name=_name(ref), fields={_plain(k): _value(v) for k, v in identity.items()}
            ),
            update_mask=_Mask(field_paths=sorted(identity)),
            update_transforms=transforms,
        )
    )


def _wrap(raw: Any) -> write.Write:
    wrapped: write.Write = write.Write.wrap(raw)
    return wrapped


def add(batch: firestore.WriteBatch, writes: Sequence[write.Write]) -> None:
    """Append built writes to ``batch`` (the hook the client's own methods append through)."""
    batch._add_write_pbs(list(writes))
