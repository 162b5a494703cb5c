"""Prices of LLM calls, from the maintained ``genai-prices`` table (never a hand-written one).

Rules:

- A model the table does not know, or knows without token prices, raises ``UnknownModelError``:
  it is reported as unpriced, never priced at zero.
- ``provider`` is a price-table provider id (``openai``, ``aws``, ``google``, ...); ``None`` lets
  the table infer it from the model name.
- Cached input tokens are part of ``input_tokens`` (as in OTel) and are charged at the table's
  cache-read price (at the input price where the table lists none). Cache writes are not
  represented in usage records and so are charged as ordinary input.
- A batched call is charged at the table's ``processing: batch`` price variant where there is
  one (the standard price otherwise).
- Prices are those in force at the call's timestamp (the table has dated price changes).

Lookups are memoized: ingest prices every record.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from typing import Final

from genai_prices import Usage
from genai_prices.data_snapshot import get_snapshot
from genai_prices.types import (
    ModelInfo,
    ModelPrice,
    Provider,
    TieredPrices,
    TimeOfDateConstraint,
)

UNKNOWN_PROVIDER: Final = "unknown"
_MTOK: Final = Decimal(1_000_000)
_NANO: Final = Decimal(1_000_000_000)
_BATCH_CONTEXT: Final = {"processing": "batch"}
# Price keys of models that are not text chat models (speech, transcription, image or video
# generation, OCR): never proposed as a cheaper replacement for a chat workload.
_NON_CHAT_PRICE_KEYS: Final = frozenset(
    {
        "output_audio_mtok",
        "output_image_mtok",
        "output_video_mtok",
        "audio_hours",
        "input_audio_hours",
        "input_mchars",
        "input_document_kpages",
        "input_annotated_document_kpages",
        "input_text_messages_kcount",
    }
)


# Priced units a usage record never reports (cache writes, searches) cost nothing in a
# record's price, so a model priced only in these and plain token prices is linear.
_LINEAR_PRICE_KEYS: Final = frozenset(
    {
        "input_mtok",
        "output_mtok",
        "cache_read_mtok",
        "cache_write_mtok",
        "cache_write_1h_mtok",
        "web_searches_kcount",
        "storage_searches_kcount",
    }
)


class UnknownModelError(LookupError):
    """The price table cannot price this (provider, model): report it unpriced, not free."""

    def __init__(self, provider: str | None, model: str, reason: str) -> None:
        where = f"provider {provider!r}" if provider else "any provider"
        super().__init__(f"model {model!r} is not priced for {where}: {reason}")
        self.provider = provider
        self.model = model


@dataclass(frozen=True, slots=True)
class ModelPrices:
    """A model's token prices in USD per million tokens, as the table gives them at a date."""

    provider: str
    model: str
    input_mtok: Decimal
    cached_input_mtok: Decimal
    output_mtok: Decimal
    cache_write_mtok: Decimal | None
    deprecated: bool
    # The table prices this model in prompt-size tiers; the prices above are the base tier.
    tiered: bool
    # Cost is exactly ``cost()`` (no tiers, no per-request or other priced units), so pricing
    # a call needs no trip through genai-prices' general calculator.
    linear: bool

    @property
    def list_price_mtok(self) -> Decimal:
        """Input plus output price per million tokens: the order used to rank models."""
        return self.input_mtok + self.output_mtok

    def cost(self, input_tokens: int, cached_input_tokens: int, output_tokens: int) -> Decimal:
        """Linear cost of these token totals at these prices (cached ones part of input)."""
        uncached = input_tokens - cached_input_tokens
        return (
            uncached * self.input_mtok
            + cached_input_tokens * self.cached_input_mtok
            + output_tokens * self.output_mtok
        ) / _MTOK


@lru_cache(maxsize=4096)
def _lookup(provider: str | None, model: str) -> tuple[Provider, ModelInfo] | str:
    """(provider, model) from the table, or the reason it has none (misses are cached too)."""
    try:
        return get_snapshot().find_provider_model(model, None, provider, None)
    except LookupError as exc:
        return str(exc)


def _resolve(provider: str | None, model: str) -> tuple[Provider, ModelInfo]:
    found = _lookup(provider, model)
    if isinstance(found, str):
        raise UnknownModelError(provider, model, found)
    return found


def _base(price: Decimal | TieredPrices | None) -> Decimal | None:
    return price.base if isinstance(price, TieredPrices) else price


def _price_keys(price: ModelPrice) -> set[str]:
    return {key for key, value in vars(price).items() if value is not None}


def _model_price(provider: Provider, info: ModelInfo, at: datetime, batch: bool) -> ModelPrice:
    # Like genai-prices itself: request variants only apply to the provider's own models.
    own = any(info is candidate for candidate in provider.models)
    return info.get_prices(at, _BATCH_CONTEXT if batch and own else None)


def _prices_of(provider: Provider, info: ModelInfo, at: datetime, batch: bool) -> ModelPrices:
    price = _model_price(provider, info, at, batch)
    input_mtok = _base(price.input_mtok)
    output_mtok = _base(price.output_mtok)
    if input_mtok is None or output_mtok is None:
        raise UnknownModelError(provider.id, info.id, "the table lists no token prices")
    cached = _base(price.cache_read_mtok)
    tiered = any(isinstance(value, TieredPrices) for value in vars(price).values())
    return ModelPrices(
        provider=provider.id,
        model=info.id,
        input_mtok=input_mtok,
        cached_input_mtok=input_mtok if cached is None else cached,
        output_mtok=output_mtok,
        cache_write_mtok=_base(price.cache_write_mtok),
        deprecated=bool(info.deprecated),
        tiered=tiered,
        linear=not tiered and _price_keys(price) <= _LINEAR_PRICE_KEYS,
    )


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


@lru_cache(maxsize=8192)
def _model_prices_cached(
    provider: str | None, model: str, at: datetime, batch: bool
) -> ModelPrices:
    table_provider, info = _resolve(provider, model)
    return _prices_of(table_provider, info, at, batch)


def model_prices(
    provider: str | None, model: str, at: datetime, *, batch: bool = False
) -> ModelPrices:
    """The model's prices per million tokens in force at ``at`` (batch variant if ``batch``).

    Raises ``UnknownModelError`` for a model the table cannot price.
    """
    at = _utc(at)
    # Memoized per day, or per minute for models with time-of-day prices (off-peak rates).
    if _has_time_of_day_prices(provider, model):
        key = at.replace(second=0, microsecond=0)
    else:
        key = at.replace(hour=0, minute=0, second=0, microsecond=0)
    return _model_prices_cached(provider, model, key, batch)


@lru_cache(maxsize=4096)
def _has_time_of_day_prices(provider: str | None, model: str) -> bool:
    found = _lookup(provider, model)
    if isinstance(found, str):
        return False
    info = found[1]
    constraints = [] if isinstance(info.prices, ModelPrice) else [p.constraint for p in info.prices]
    constraints += [variant.constraint for variant in info.price_variants or ()]
    return any(isinstance(c, TimeOfDateConstraint) for c in constraints)


def resolve_provider(provider: str | None, model: str) -> str:
    """The provider id a record is filed under: as given, else inferred by the table.

    ``UNKNOWN_PROVIDER`` when none is given and the table cannot infer one.
    """
    if provider is not None:
        return provider
    found = _lookup(None, model)
    return UNKNOWN_PROVIDER if isinstance(found, str) else found[0].id


def is_deprecated(provider: str | None, model: str) -> bool:
    """Whether the table marks the model deprecated (raises ``UnknownModelError`` if unknown)."""
    return bool(_resolve(provider, model)[1].deprecated)


def call_cost(
    provider: str | None,
    model: str,
    *,
    input_tokens: int,
    cached_input_tokens: int,
    output_tokens: int,
    at: datetime,
    batch: bool = False,
    requests: int = 1,
) -> Decimal:
    """USD cost of ``requests`` calls with these token totals, at the prices in force at ``at``.

    For ``requests > 1`` (aggregate records) the per-call average decides the price tier.
    Raises ``UnknownModelError`` for a model the table cannot price.
    """
    if requests < 1:
        raise ValueError("requests must be at least 1")
    # Fails loudly for a model listed without token prices, rather than costing it zero.
    prices = model_prices(provider, model, at, batch=batch)
    if prices.linear:
        return prices.cost(input_tokens, cached_input_tokens, output_tokens)
    table_provider, info = _resolve(provider, model)
    per_call = Decimal(requests)
    usage = Usage(
        input_tokens=Decimal(input_tokens) / per_call,
        cache_read_tokens=Decimal(cached_input_tokens) / per_call,
        output_tokens=Decimal(output_tokens) / per_call,
    )
    price = _model_price(table_provider, info, _utc(at), batch).calc_price(usage)
    return price["total_price"] * per_call


def to_nanousd(usd: Decimal) -> int:
    """USD as an integer count of 1e-9 USD: exact, additive, and safe for Firestore Increment."""
    return int((usd * _NANO).to_integral_value(rounding=ROUND_HALF_EVEN))


def _is_chat_candidate(info: ModelInfo, at: datetime) -> bool:
    if info.deprecated:
        return False
    keys = _price_keys(info.get_prices(at))
    return {"input_mtok", "output_mtok"} <= keys and not keys & _NON_CHAT_PRICE_KEYS


def _common_prefix(a: str, b: str) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def _candidates(provider: str | None, model: str, at: datetime) -> tuple[ModelPrices, ...]:
    """The chat models of the same provider that cost no more on input or output."""
    current = model_prices(provider, model, at)
    table_provider, info = _resolve(provider, model)
    at = _utc(at)
    found = []
    for candidate in table_provider.models:
        if candidate is info or not _is_chat_candidate(candidate, at):
            continue
        prices = _prices_of(table_provider, candidate, at, batch=False)
        if prices.input_mtok <= current.input_mtok and prices.output_mtok <= current.output_mtok:
            found.append(prices)
    return tuple(found)


@lru_cache(maxsize=64)
def _provider(provider: str) -> Provider | None:
    return next((p for p in get_snapshot().providers if p.id == provider), None)


def chat_models(provider: str, at: datetime) -> tuple[ModelPrices, ...]:
    """The provider's non-deprecated chat models at ``at``, at list prices, in table order.

    Only models the table finds again by their id (``ft:gpt-4o``, a fine-tuning price, is
    matched only by a fine-tuned model's full name: it is no model one could move to).
    Empty for a provider the table does not know.
    """
    table_provider = _provider(provider)
    if table_provider is None:
        return ()
    at = _utc(at)
    return tuple(
        _prices_of(table_provider, info, at, batch=False)
        for info in table_provider.models
        if _is_chat_candidate(info, at) and _finds_itself(table_provider, info)
    )


def _finds_itself(provider: Provider, info: ModelInfo) -> bool:
    found = _lookup(provider.id, info.id)
    return not isinstance(found, str) and found[1] is info


def cheaper_models(provider: str | None, model: str, at: datetime) -> tuple[ModelPrices, ...]:
    """Cheaper chat models of the same provider, best replacement first.

    A candidate is a model of the same table provider that is not deprecated, is a chat model
    (has input and output token prices and no speech/image/video/OCR prices), costs no more
    per input and per output token, and costs strictly less on input plus output.
    Order: longest common id prefix with ``model`` first (its own family: gpt-4o →
    gpt-4o-mini), then the lower input-plus-output price, then the id.
    """
    current = model_prices(provider, model, at)
    cheaper = [
        c for c in _candidates(provider, model, at) if c.list_price_mtok < current.list_price_mtok
    ]
    cheaper.sort(
        key=lambda c: (-_common_prefix(c.model, current.model), c.list_price_mtok, c.model)
    )
    return tuple(cheaper)


def deprecated_replacement(provider: str | None, model: str, at: datetime) -> ModelPrices | None:
    """The replacement for a model the table marks deprecated; None if it is not deprecated.

    The replacement is the closest step down in price: among the same provider's
    non-deprecated chat models that cost no more per input and per output token, the one with
    the highest input-plus-output price (then the longest common id prefix, then the id).
    None as well when no such model exists.
    """
    current = model_prices(provider, model, at)
    if not current.deprecated:
        return None
    candidates = sorted(
        _candidates(provider, model, at),
        key=lambda c: (-c.list_price_mtok, -_common_prefix(c.model, current.model), c.model),
    )
    return candidates[0] if candidates else None
