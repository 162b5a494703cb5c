"""Importers of provider usage exports into ``UsageRecord``s, and what they report back."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.models.usage import UsageRecord


@dataclass(frozen=True, slots=True)
class ImportRejection:
    """One entry that could not be imported: where it was and why."""

    source: str
    error: str


@dataclass(slots=True)
class ImportResult:
    """Records imported, entries rejected (with reasons), and notes on what was left out."""

    records: list[UsageRecord] = field(default_factory=list)
    rejected: list[ImportRejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
