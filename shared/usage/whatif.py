"""What-if repricing (issue 14 item 7, docs/prices.md): what the period's measured tokens,
the whole workspace's or one feature's, would have cost on another model.

- Tokens: the period's daily rollups as measured (input, cached input, output; the batch
  ones apart), per source (provider, model).
- Target prices: the book's (the workspace's, else the list) for the target at 00:00 UTC of
  each day, so each day's tokens are priced as the target was priced that day (a list price
  or a workspace entry that changes inside the period splits it); batch tokens at its batch
  prices. The prices shown (``input_usd_per_mtok`` ...) are those of the period's last day.
- Current cost: the rollups' cost at the workspace's prices (``shared.usage.repricing``),
  so the difference is what-if minus what was (or would have been) billed.
- Caveat, always stated: the target's tokenizer would count the same text differently, so
  this prices the measured tokens, an estimate and not a measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Final

from shared import pricing
from shared.models.findings import WhatIf, WhatIfSource
from shared.models.triage import WhatIfSpec
from shared.price_book import PriceBook
from shared.usage.repricing import day_start, prices_basis
from shared.usage.rollups import DailyRollup
from shared.usage.savings import cents, nanousd_to_usd

CAVEAT: Final = (
    "Token counts differ between model families: another model's tokenizer splits the same "
    "prompts and answers into a different number of tokens, so this prices the tokens "
    "measured on the current models at the target's prices. It is an estimate, not a "
    "measurement."
)
_PCT_DIGITS: Final = 1


def target_prices(
    spec: WhatIfSpec, book: PriceBook, day: str
) -> tuple[pricing.ModelPrices, pricing.ModelPrices]:
    """The target's standard and batch prices on ``day``; ``pricing.UnknownModelError`` if
    unpriced."""
    at = day_start(day)
    return (
        book.model_prices(spec.provider, spec.model, at),
        book.model_prices(spec.provider, spec.model, at, batch=True),
    )


def check_target(spec: WhatIfSpec, book: PriceBook, days: Sequence[str]) -> None:
    """``pricing.UnknownModelError`` naming the target if any of ``days`` has no price for it
    (a private model priced only from a ``from`` inside the period, for one)."""
    for day in days:
        target_prices(spec, book, day)


def what_if(
    rows: Sequence[DailyRollup], spec: WhatIfSpec, book: PriceBook, days: Sequence[str]
) -> WhatIf:
    """``rows``: the daily rollups at the workspace's prices (at least the period's days);
    only ``days`` (and ``spec.feature``'s rows, if given) count."""
    prices = {day: target_prices(spec, book, day) for day in days}
    standard = prices[days[-1]][0]
    wanted = set(days)
    by_source: dict[tuple[str, str], list[DailyRollup]] = {}
    for row in rows:
        if row.day in wanted and (spec.feature is None or row.feature == spec.feature):
            by_source.setdefault((row.provider, row.model), []).append(row)
    sources = []
    current_total = Decimal(0)
    what_if_total = Decimal(0)
    for (provider, model), own in sorted(by_source.items()):
        tokens = [sum(getattr(r, f) for r in own) for f in _TOKENS]
        cost = sum((_day_cost(r, *prices[r.day]) for r in own), Decimal(0))
        current = nanousd_to_usd(sum(r.cost_nanousd for r in own))
        current_total += current
        what_if_total += cost
        sources.append(
            WhatIfSource(
                provider=provider,
                model=model,
                requests=sum(r.requests for r in own),
                input_tokens=tokens[0],
                cached_input_tokens=tokens[1],
                output_tokens=tokens[2],
                unpriced_requests=sum(r.unpriced_requests for r in own),
                current_cost_usd=cents(current),
                what_if_cost_usd=cents(cost),
                difference_usd=cents(cost - current),
            )
        )
    difference = what_if_total - current_total
    return WhatIf(
        provider=standard.provider,
        model=standard.model,
        feature=spec.feature,
        input_usd_per_mtok=float(standard.input_mtok),
        cached_input_usd_per_mtok=float(standard.cached_input_mtok),
        output_usd_per_mtok=float(standard.output_mtok),
        requests=sum(s.requests for s in sources),
        current_cost_usd=cents(current_total),
        what_if_cost_usd=cents(what_if_total),
        difference_usd=cents(difference),
        difference_pct=(
            round(float(difference / current_total * 100), _PCT_DIGITS) if current_total else None
        ),
        sources=sources,
        prices=prices_basis(book),
        caveat=CAVEAT,
    )


def _day_cost(
    row: DailyRollup, standard: pricing.ModelPrices, batch: pricing.ModelPrices
) -> Decimal:
    """One row's tokens at the target's prices of the row's day (its batch tokens at the
    batch prices)."""
    batched = [getattr(row, f"batch_{f}") for f in _TOKENS]
    unbatched = [getattr(row, f) - b for f, b in zip(_TOKENS, batched, strict=True)]
    return standard.cost(*unbatched) + batch.cost(*batched)


_TOKENS: Final = ("input_tokens", "cached_input_tokens", "output_tokens")
