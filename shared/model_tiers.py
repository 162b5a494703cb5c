"""Capability tiers of chat models and Gemini's cache storage prices (``model_tiers.yaml``).

The cheaper-model rule (``shared.usage.savings``) proposes targets of the tier a workload
needs; the price table ranks models by price but says nothing of what they can do, so the
tiers come from this maintained list (its sources are in the YAML). A model no family
matches has no tier and is never proposed.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

TIERS_FILE: Final = Path(__file__).with_name("model_tiers.yaml")

Tier = Literal["small", "medium", "large"]
# Smallest first: a tier's index is its rank.
TIER_ORDER: Final[tuple[Tier, ...]] = ("small", "medium", "large")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _compiles(pattern: str) -> str:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from exc
    return pattern


class Family(_Frozen):
    name: str = Field(min_length=1)
    providers: tuple[str, ...] = Field(min_length=1)
    pattern: str = Field(min_length=1)
    tier: Tier
    propose: bool = True

    _check = field_validator("pattern")(_compiles)


class StoragePrice(_Frozen):
    pattern: str = Field(min_length=1)
    usd_per_mtok_hour: Decimal = Field(gt=0)

    _check = field_validator("pattern")(_compiles)


class CacheStorage(_Frozen):
    provider: str
    prices: tuple[StoragePrice, ...]
    default_usd_per_mtok_hour: Decimal = Field(gt=0)


class ModelTiers(_Frozen):
    families: tuple[Family, ...] = Field(min_length=1)
    cache_storage: CacheStorage

    def family(self, provider: str, model: str) -> Family | None:
        """The first family of ``provider`` whose pattern matches ``model``, if any."""
        name = model.lower()
        return next(
            (f for f in self.families if provider in f.providers and re.search(f.pattern, name)),
            None,
        )

    def tier(self, provider: str, model: str) -> Tier | None:
        found = self.family(provider, model)
        return None if found is None else found.tier

    def proposable(self, provider: str, model: str) -> bool:
        """Whether the model may be recommended as a target: classified and not excluded."""
        found = self.family(provider, model)
        return found is not None and found.propose

    def storage_usd_per_mtok_hour(self, provider: str, model: str) -> Decimal | None:
        """Gemini's explicit-cache storage price of the model; None for other providers."""
        storage = self.cache_storage
        if provider != storage.provider:
            return None
        name = model.lower()
        return next(
            (p.usd_per_mtok_hour for p in storage.prices if re.search(p.pattern, name)),
            storage.default_usd_per_mtok_hour,
        )


@cache
def model_tiers(path: Path = TIERS_FILE) -> ModelTiers:
    """The list, validated once per process."""
    return ModelTiers.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


def tier_rank(tier: Tier) -> int:
    return TIER_ORDER.index(tier)
