"""Query results read from the raw protobuf documents (the read-side twin of ``raw_writes``).

google-cloud-firestore turns every document a query returns into a snapshot through its
proto-plus wrappers, decoding each value on the way: for the data step's 30-day query (271
daily rollups of ~40 fields) that decoding added ~60% to the emulator's own answer (67 ms
against 41; docs/benchmarks.md, golden path). Here each response is unwrapped to its
protobuf message and the values are read straight from it (43 ms).
``tests/integration/test_raw_reads.py`` proves a query read here equals the client's own
``to_dict()`` of the same documents.

Only the value kinds the stores keep in what they query (null, booleans, numbers, strings,
bytes, maps, arrays): any other kind raises, so a new field type cannot be misread silently. A
stream broken midway raises (the client's ``stream()`` would resume it): the step fails and
its message is delivered again.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Final

from google.cloud import firestore
from google.cloud.firestore_v1.types import RunQueryResponse

_RunQueryResponse: Final[Any] = RunQueryResponse


def stream(db: firestore.Client, query: firestore.Query) -> Iterator[dict[str, Any]]:
    """The fields of each document ``query`` matches, in the order the query returns them."""
    for raw in _responses(db, query):
        if raw.HasField("document"):
            yield {name: _value(value) for name, value in raw.document.fields.items()}


@dataclass(frozen=True, slots=True)
class RawDocument:
    name: str  # the full resource name
    update_time: Any  # a protobuf Timestamp, as a write precondition names it
    fields: dict[str, Any]


def documents(db: firestore.Client, query: firestore.Query) -> tuple[list[RawDocument], Any]:
    """Every document ``query`` matches (in its order) with its update time, and the query's
    read time (a protobuf Timestamp: the snapshot the documents are of)."""
    found: list[RawDocument] = []
    read_time = None
    for raw in _responses(db, query):
        if raw.HasField("read_time"):
            read_time = raw.read_time
        if raw.HasField("document"):
            doc = raw.document
            found.append(
                RawDocument(
                    doc.name,
                    doc.update_time,
                    {name: _value(value) for name, value in doc.fields.items()},
                )
            )
    if read_time is None:
        raise RuntimeError("the query's answer carried no read time")
    return found, read_time


def _responses(db: firestore.Client, query: firestore.Query) -> Iterator[Any]:
    parent, _ = query._parent._parent_info()
    request = {"parent": parent, "structured_query": query._to_protobuf()}
    for response in db._firestore_api.run_query(request=request, metadata=db._rpc_metadata):
        yield _RunQueryResponse.pb(response)


def _value(value: Any) -> Any:
    kind = value.WhichOneof("value_type")
    if kind == "integer_value":
        return value.integer_value
    if kind == "string_value":
        return value.string_value
    if kind == "double_value":
        return value.double_value
    if kind == "null_value":
        return None
    if kind == "boolean_value":
        return value.boolean_value
    if kind == "bytes_value":
        return value.bytes_value
    if kind == "map_value":
        return {name: _value(v) for name, v in value.map_value.fields.items()}
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    raise TypeError(f"raw_reads does not read {kind} values: read this query with the client")
