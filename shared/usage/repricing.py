"""Rollups at the workspace's prices (DESIGN §8 "Prices", docs/prices.md).

Ingest prices every record at the list prices of its timestamp, and the rollups keep that
cost; a workspace's book is applied when rollups are read, here. So a change of the book
re-prices every day already stored, each by the entry in force on that day (``from``): days
before an entry's ``from`` keep the prices before it.

A row (one day, provider, model, and feature or user) under an entry in force that day:

- a discount alone, on a model the table prices: every cost of the row times
  (1 - discount/100), exact whatever the table's tiers or time-of-day prices were;
- explicit prices (or a model only the workspace prices): the row's token sums at the book's
  prices, its batch tokens at the book's batch prices (``PriceBook.model_prices``). The
  subsets follow: ``no_user_*`` (never batched) at the standard prices, ``batch_*`` at the
  batch ones, ``error_*`` and ``repeat_*`` at the standard or batch prices when the row is
  all one or the other, and in a mixed row at the row's repriced-to-list ratio (the records
  do not say how many of the subset were batched). Calls the list could not price are
  priced now (``unpriced_requests`` 0).

Rows with no entry in force, and every row under ``PriceBook.LIST``, are returned as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from itertools import groupby
from operator import attrgetter
from typing import Any, Final, TypeVar

from shared import pricing
from shared.models.findings import PricesBasis
from shared.price_book import PriceBook, PriceEntry
from shared.usage.memo import RowsMemo
from shared.usage.rollups import DailyRollup, UserDailyRollup

_R = TypeVar("_R", DailyRollup, UserDailyRollup)

# Subsets of a daily rollup that may hold batched calls, each with a cost of its own.
_SUBSETS: Final = ("error_", "repeat_")


def day_start(day: str) -> datetime:
    """00:00 UTC of a ``YYYY-MM-DD`` day: the instant a day's prices are looked up at."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class _Scaled:
    """A discount alone on a listed model: every cost times (1 - discount/100), as the
    integer ratio (numerator, denominator)."""

    ratio: tuple[int, int]


@dataclass(frozen=True, slots=True)
class _Priced:
    """Explicit prices: costs from the token sums."""

    standard: pricing.ModelPrices
    batch: pricing.ModelPrices


_How = _Scaled | _Priced | None


def _how(book: PriceBook, provider: str, model: str, day: str, unpriced: bool) -> _How:
    at = day_start(day)
    entry: PriceEntry | None = book.entry_at(provider, model, at)
    if entry is None:
        return None
    if not entry.explicit and not unpriced:
        try:
            pricing.model_prices(provider, model, at)
        except pricing.UnknownModelError:
            pass  # Not listed: priced below from the entry (or left unpriced).
        else:
            return _Scaled(entry.factor.as_integer_ratio())
    try:
        return _Priced(
            book.model_prices(provider, model, at),
            book.model_prices(provider, model, at, batch=True),
        )
    except pricing.UnknownModelError:
        # Neither the table nor the entry (a discount alone) prices it: it stays unpriced.
        return None


def _nano(usd: Decimal) -> int:
    return pricing.to_nanousd(usd)


def _scale(nanousd: int, ratio: tuple[int, int]) -> int:
    """``nanousd`` times ``ratio`` (numerator, denominator), rounded half to even: integers
    only (a 90-day read scales tens of thousands of rows)."""
    quotient, remainder = divmod(nanousd * ratio[0], ratio[1])
    twice = 2 * remainder
    if twice > ratio[1] or (twice == ratio[1] and quotient % 2):
        quotient += 1
    return quotient


def _tokens(row: Any, prefix: str = "") -> tuple[int, int, int]:
    return (
        getattr(row, f"{prefix}input_tokens"),
        getattr(row, f"{prefix}cached_input_tokens"),
        getattr(row, f"{prefix}output_tokens"),
    )


def _minus(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[int, int, int]:
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2])


@cache
def _cost_fields(cls: type[DailyRollup | UserDailyRollup]) -> tuple[str, ...]:
    return tuple(name for name in cls.model_fields if name.endswith("cost_nanousd"))


def _copy(row: _R, update: dict[str, int]) -> _R:
    # Rows read from the store are whole (``_Rollup.trusted``): a copy with new costs needs no
    # validation, and ``model_copy`` would cost more than the repricing.
    return type(row).trusted({**vars(row), **update})


def _apply(row: _R, how: _Scaled | _Priced) -> _R:
    update: dict[str, int] = {}
    if isinstance(how, _Scaled):
        ratio = how.ratio
        fields = vars(row)
        for name in _cost_fields(type(row)):
            if fields[name]:
                update[name] = _scale(fields[name], ratio)
        return _copy(row, update)
    standard, batch = how.standard, how.batch
    batched = _tokens(row, "batch_")
    total = standard.cost(*_minus(_tokens(row), batched)) + batch.cost(*batched)
    update["cost_nanousd"] = _nano(total)
    update["unpriced_requests"] = 0
    update["batch_cost_nanousd"] = _nano(batch.cost(*batched))
    if isinstance(row, DailyRollup):
        update["no_user_cost_nanousd"] = _nano(standard.cost(*_tokens(row, "no_user_")))
        listed = row.cost_nanousd
        for prefix in _SUBSETS:
            subset = _tokens(row, prefix)
            if row.batch_requests == 0:
                cost = _nano(standard.cost(*subset))
            elif row.batch_requests == row.requests:
                cost = _nano(batch.cost(*subset))
            elif listed and not row.unpriced_requests:
                share = Decimal(getattr(row, f"{prefix}cost_nanousd")) / listed
                cost = _nano(total * share)
            else:
                cost = _nano(standard.cost(*subset))
            update[f"{prefix}cost_nanousd"] = cost
    return _copy(row, update)


def prices_basis(book: PriceBook) -> PricesBasis:
    return "workspace" if book.custom else "list"


def reprice(rows: Sequence[_R], book: PriceBook) -> list[_R]:
    """``rows`` at ``book``'s prices (the same rows, in order; unchanged ones as they are).

    A day's rows at a book are kept while the very same rows come again with an equal book
    (``shared.usage.memo``): a past day's rows are read again by every question, and
    repricing them costs more than the rest of the read."""
    if not book.custom:
        return list(rows)
    found: list[_R] = []
    for _, run in groupby(rows, _day_of):
        found.extend(_REPRICED.of(list(run), lambda day: _reprice(day, book), tag=book))
    return found


def _reprice(rows: Sequence[_R], book: PriceBook) -> list[_R]:
    # One decision per (provider, model, day, unpriced), not per row (a read holds many
    # features and users of one model and day).
    decided: dict[tuple[str, str, str, bool], _How] = {}
    found: list[_R] = []
    for row in rows:
        key = (row.provider, row.model, row.day, row.unpriced_requests > 0)
        if key not in decided:
            decided[key] = _how(book, *key)
        how = decided[key]
        found.append(row if how is None else _apply(row, how))
    return found


# As many rows as the store keeps decoded (``DECODED_ROWS``); the repriced copies are new
# rows (~2 KB each): ~100 MB more at most, for a workspace with a book of its own.
_REPRICED: Final[RowsMemo[Any]] = RowsMemo(50_000)
_day_of: Final = attrgetter("day")
