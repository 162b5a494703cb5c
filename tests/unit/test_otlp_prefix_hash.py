"""OTLP spans carry the prompt prefix hash as ``apex.prompt_prefix_hash`` (DESIGN §8)."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.ingest.otlp import map_spans
from tests.support.otlp import chat, export

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def test_the_prefix_hash_attribute_reaches_the_record() -> None:
    hashed = chat(extra={"apex.prompt_prefix_hash": "sys-v3:9f2c"})
    plain = chat()
    mapped = map_spans(export([hashed, plain]), now=NOW)
    assert mapped.rejected == 0, mapped.errors
    by_id = {r.record_id: r for r in mapped.records}
    assert by_id[hashed.record_id].prompt_prefix_hash == "sys-v3:9f2c"
    assert by_id[plain.record_id].prompt_prefix_hash is None


def test_a_prefix_hash_of_the_wrong_type_or_size_rejects_the_span() -> None:
    mapped = map_spans(
        export(
            [
                chat(extra={"apex.prompt_prefix_hash": 12}),
                chat(extra={"apex.prompt_prefix_hash": "x" * 129}),
            ]
        ),
        now=NOW,
    )
    assert (mapped.rejected, mapped.records) == (2, [])
    assert "attributes.apex.prompt_prefix_hash: expected stringValue" in mapped.errors[0]
    assert "attributes.apex.prompt_prefix_hash" in mapped.errors[1]
