"""A workspace's price book: its negotiated prices over the table's list prices (DESIGN §8).

``PriceBook.LIST`` is the empty book: every price is ``shared.pricing``'s. A workspace's book
holds its entries (``PUT /{ws}/prices``) and its allowed models (``PUT /{ws}/settings``).

An entry prices one (provider, model) from its ``from`` date (UTC day; no ``from``: always):

- explicit prices (``input_mtok``, ``cached_input_mtok``, ``output_mtok``) replace the list
  ones; the others stay the list's. A model the table does not know (a private or fine-tuned
  one) is priced by its entry, which then gives at least the input and output prices (cached
  input defaults to the input price);
- ``discount_pct`` applies to the resulting prices (list or given): price * (1 - d/100);
- of several entries for one model, the one with the latest ``from`` on or before the day
  of ``at`` is in force; before the first ``from`` the list prices apply.

Batch calls: a negotiated price is a price of standard calls, and the provider's batch
discount still applies on top of it. A batch price is the entry's price * (the table's batch
price / its standard price) for the same token kind, then the discount; a model the table does
not know has no batch variant (its batch calls cost its entry's prices). The same ratio carries
an explicit input price to the cache-write price and, when the entry gives no cached price, to
the cached-input price (the provider's cache discount stays proportional).

Models are matched through the table's resolution of names (``gpt-4o-2024-08-06`` and
``gpt-4o`` are one model when the table says so); a model it does not know, by its name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import ClassVar, Final

from shared import pricing

_HUNDRED: Final = Decimal(100)


@dataclass(frozen=True, slots=True)
class PriceEntry:
    """One negotiated price of a (provider, model), in USD per million tokens."""

    provider: str
    model: str
    input_mtok: Decimal | None = None
    cached_input_mtok: Decimal | None = None
    output_mtok: Decimal | None = None
    discount_pct: Decimal | None = None
    # First UTC day the entry is in force; None: always.
    from_: date | None = None

    @property
    def explicit(self) -> bool:
        """Whether the entry gives a price of its own (not only a discount)."""
        return any(
            p is not None for p in (self.input_mtok, self.cached_input_mtok, self.output_mtok)
        )

    @property
    def factor(self) -> Decimal:
        """What the discount leaves of a price (1 without one)."""
        return Decimal(1) if self.discount_pct is None else 1 - self.discount_pct / _HUNDRED


def _utc_day(at: datetime) -> date:
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).date()


def table_name(provider: str | None, model: str, at: datetime) -> tuple[str | None, str]:
    """(provider, model) as the table names them; as given for a model it does not know."""
    try:
        prices = pricing.model_prices(provider, model, at)
    except pricing.UnknownModelError:
        return provider, model
    return prices.provider, prices.model


def _ratio(value: Decimal, base: Decimal) -> Decimal:
    return Decimal(1) if base == 0 else value / base


@dataclass(frozen=True)
class PriceBook:
    """A workspace's prices (immutable). ``PriceBook.LIST`` has no entries and allows all."""

    entries: tuple[PriceEntry, ...] = ()
    # None: every model is allowed as a recommendation target.
    allowed_models: frozenset[tuple[str, str]] | None = None
    _by_model: dict[tuple[str, str], tuple[PriceEntry, ...]] = field(
        init=False, repr=False, compare=False
    )

    LIST: ClassVar[PriceBook]

    def __post_init__(self) -> None:
        # Entries are keyed by the table's names, at the epoch of the table's name resolution
        # (a name resolves to one model whatever the date).
        grouped: dict[tuple[str, str], list[PriceEntry]] = {}
        for entry in self.entries:
            provider, model = table_name(entry.provider, entry.model, datetime.now(UTC))
            grouped.setdefault((provider or entry.provider, model), []).append(entry)
        by_model = {
            key: tuple(sorted(group, key=lambda e: e.from_ or date.min))
            for key, group in grouped.items()
        }
        object.__setattr__(self, "_by_model", by_model)

    @classmethod
    def of(
        cls,
        entries: Iterable[PriceEntry] = (),
        allowed_models: Iterable[tuple[str, str]] | None = None,
    ) -> PriceBook:
        return cls(
            entries=tuple(entries),
            allowed_models=None if allowed_models is None else frozenset(allowed_models),
        )

    @property
    def custom(self) -> bool:
        """The workspace set prices of its own: answers say "at your prices"."""
        return bool(self.entries)

    def allows(self, provider: str, model: str) -> bool:
        """Whether the workspace allows this model as a target (all, without a list)."""
        if self.allowed_models is None:
            return True
        if (provider, model) in self.allowed_models:
            return True
        canonical = table_name(provider, model, datetime.now(UTC))
        return any(table_name(p, m, datetime.now(UTC)) == canonical for p, m in self.allowed_models)

    def entry_at(self, provider: str | None, model: str, at: datetime) -> PriceEntry | None:
        """The entry in force for the model on the UTC day of ``at`` (None: list prices)."""
        if not self.entries:
            return None
        table_provider, table_model = table_name(provider, model, at)
        if table_provider is None:
            # No provider given and the table cannot name one: an entry of that model name,
            # if only one provider has it.
            keys = [key for key in self._by_model if key[1] == model]
            if len(keys) != 1:
                return None
            group = self._by_model[keys[0]]
        else:
            group = self._by_model.get((table_provider, table_model), ())
        day = _utc_day(at)
        in_force = [e for e in group if e.from_ is None or e.from_ <= day]
        return in_force[-1] if in_force else None

    def model_prices(
        self, provider: str | None, model: str, at: datetime, *, batch: bool = False
    ) -> pricing.ModelPrices:
        """The model's prices at ``at`` in this book (batch variant if ``batch``).

        Raises ``pricing.UnknownModelError`` when neither the table nor the book prices it.
        """
        entry = self.entry_at(provider, model, at)
        if entry is None:
            return pricing.model_prices(provider, model, at, batch=batch)
        try:
            standard: pricing.ModelPrices | None = pricing.model_prices(provider, model, at)
        except pricing.UnknownModelError:
            standard = None
        if standard is None:
            return _private(entry)
        listed = pricing.model_prices(provider, model, at, batch=batch) if batch else standard
        return _negotiated(entry, standard, listed)

    def chat_models(self, provider: str, at: datetime) -> tuple[pricing.ModelPrices, ...]:
        """The provider's non-deprecated chat models at ``at``, at this book's prices.

        The table's, then the workspace's private ones (models the table does not know that
        an entry in force prices).
        """
        found: list[pricing.ModelPrices] = []
        for listed in pricing.chat_models(provider, at):
            entry = self.entry_at(listed.provider, listed.model, at)
            found.append(listed if entry is None else _negotiated(entry, listed, listed))
        private: set[str] = set()
        for entry in self.entries:
            if entry.provider != provider or entry.model in private:
                continue
            in_force = self.entry_at(provider, entry.model, at)
            if in_force is not None and _is_private(provider, entry.model, at):
                private.add(entry.model)
                found.append(_private(in_force))
        return tuple(found)


def _is_private(provider: str, model: str, at: datetime) -> bool:
    try:
        pricing.model_prices(provider, model, at)
    except pricing.UnknownModelError:
        return True
    return False


def _private(entry: PriceEntry) -> pricing.ModelPrices:
    """A model only the workspace prices: its entry's prices, flat."""
    if entry.input_mtok is None or entry.output_mtok is None:
        raise pricing.UnknownModelError(
            entry.provider,
            entry.model,
            "the table does not know it and the workspace's entry gives no input and output prices",
        )
    factor = entry.factor
    cached = entry.input_mtok if entry.cached_input_mtok is None else entry.cached_input_mtok
    return pricing.ModelPrices(
        provider=entry.provider,
        model=entry.model,
        input_mtok=entry.input_mtok * factor,
        cached_input_mtok=cached * factor,
        output_mtok=entry.output_mtok * factor,
        cache_write_mtok=None,
        deprecated=False,
        tiered=False,
        linear=True,
    )


def _negotiated(
    entry: PriceEntry, standard: pricing.ModelPrices, listed: pricing.ModelPrices
) -> pricing.ModelPrices:
    """A table model's prices under an entry; ``listed`` is the list variant (batch or not)."""
    factor = entry.factor
    input_mtok = listed.input_mtok
    output_mtok = listed.output_mtok
    cached = listed.cached_input_mtok
    cache_write = listed.cache_write_mtok
    if entry.input_mtok is not None:
        input_ratio = _ratio(entry.input_mtok, standard.input_mtok)
        input_mtok = entry.input_mtok * _ratio(listed.input_mtok, standard.input_mtok)
        cached = cached * input_ratio
        cache_write = None if cache_write is None else cache_write * input_ratio
    if entry.cached_input_mtok is not None:
        cached = entry.cached_input_mtok * _ratio(
            listed.cached_input_mtok, standard.cached_input_mtok
        )
    if entry.output_mtok is not None:
        output_mtok = entry.output_mtok * _ratio(listed.output_mtok, standard.output_mtok)
    return pricing.ModelPrices(
        provider=standard.provider,
        model=standard.model,
        input_mtok=input_mtok * factor,
        cached_input_mtok=cached * factor,
        output_mtok=output_mtok * factor,
        cache_write_mtok=None if cache_write is None else cache_write * factor,
        deprecated=standard.deprecated,
        # Explicit prices are flat per token; a discount alone scales the list's tiers.
        tiered=listed.tiered and not entry.explicit,
        linear=listed.linear or entry.explicit,
    )


PriceBook.LIST = PriceBook()
