"""A usage record's cost priced from the price table directly: the tests' own reckoning, to
check the rollups (and the planted data) against."""

from __future__ import annotations

from shared import pricing
from shared.models.usage import UsageRecord


def cost_nano(record: UsageRecord) -> int:
    return pricing.to_nanousd(
        pricing.call_cost(
            record.provider,
            record.model,
            input_tokens=record.input_tokens,
            cached_input_tokens=record.cached_input_tokens,
            output_tokens=record.output_tokens,
            at=record.ts,
            batch=record.batch,
        )
    )
