"""JSON schemas of the OTLP/JSON messages ``otlp_ingest`` reads and writes, derived from the
``opentelemetry-proto`` (and ``google.rpc``) descriptors, for the OpenAPI document: nothing
about OTLP is written by hand, so the document follows the pinned package.

The schemas follow protobuf's JSON mapping with OTLP/JSON's deviations: trace and span ids
in hex, enums as integers (names are accepted too), 64-bit integers as decimal strings or
numbers; unknown fields are allowed (receivers ignore them)."""

from __future__ import annotations

from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor

REF: Final = "#/components/schemas/{name}"
_INT64: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_SFIXED64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_FIXED64,
    }
)
_UNSIGNED: Final = frozenset({FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64})
_INT32: Final = frozenset(
    {
        FieldDescriptor.TYPE_INT32,
        FieldDescriptor.TYPE_SINT32,
        FieldDescriptor.TYPE_SFIXED32,
        FieldDescriptor.TYPE_UINT32,
        FieldDescriptor.TYPE_FIXED32,
    }
)
_FLOATS: Final = frozenset({FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT})
# OTLP/JSON writes these bytes fields in hex (trace ids 16 bytes, span ids 8).
_HEX_IDS: Final = {"trace_id": 16, "span_id": 8, "parent_span_id": 8}
_ANY: Final = "google.protobuf.Any"


def message_schemas(*roots: Descriptor) -> dict[str, Any]:
    """The schema of each root and of every message it reaches, keyed by full name (the
    component names the refs use)."""
    schemas: dict[str, Any] = {}
    for root in roots:
        _visit(root, schemas)
    return schemas


def ref(descriptor: Descriptor) -> dict[str, str]:
    return {"$ref": REF.format(name=descriptor.full_name)}


def _visit(descriptor: Descriptor, schemas: dict[str, Any]) -> None:
    if descriptor.full_name in schemas:
        return
    if descriptor.full_name == _ANY:
        # An Any in JSON: its type URL and the message's own fields.
        schemas[_ANY] = {
            "type": "object",
            "properties": {"@type": {"type": "string"}},
            "required": ["@type"],
        }
        return
    schemas[descriptor.full_name] = {}  # a message may reach itself (AnyValue)
    properties = {f.json_name: _field(f, schemas) for f in descriptor.fields}
    schemas[descriptor.full_name] = {
        "type": "object",
        "description": f"`{descriptor.full_name}` in OTLP/JSON",
        "properties": properties,
    }


def _field(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    item = _value(field, schemas)
    return {"type": "array", "items": item} if field.is_repeated else item


def _value(field: FieldDescriptor, schemas: dict[str, Any]) -> dict[str, Any]:
    kind = field.type
    if field.message_type is not None:
        _visit(field.message_type, schemas)
        return ref(field.message_type)
    if field.enum_type is not None:
        return {"type": "integer", "enum": [v.number for v in field.enum_type.values]}
    if kind in _INT64:
        low = 0 if kind in _UNSIGNED else -(2**63)
        high = 2**64 - 1 if kind in _UNSIGNED else 2**63 - 1
        digits = r"^[0-9]{1,20}$" if kind in _UNSIGNED else r"^-?[0-9]{1,19}$"
        return {
            "anyOf": [
                {"type": "string", "pattern": digits},
                {"type": "integer", "minimum": low, "maximum": high},
            ]
        }
    if kind in _INT32:
        return {"type": "integer"}
    if kind in _FLOATS:
        return {"type": "number"}
    if kind == FieldDescriptor.TYPE_BOOL:
        return {"type": "boolean"}
    if kind == FieldDescriptor.TYPE_BYTES:
        size = _HEX_IDS.get(field.name)
        if size is not None:
            return {"type": "string", "pattern": f"^([0-9a-fA-F]{{{2 * size}}})?$"}
        return {"type": "string", "contentEncoding": "base64"}
    return {"type": "string"}
