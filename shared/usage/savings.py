"""The savings rules: how the optimization agent detects an inefficiency and prices its fix.

These are pure functions over the ``usage_daily`` rollups of ``shared.usage.rollups``; the
synthetic generator (``devstack.synthetic``) plants one inefficiency of each kind and uses the
same rules to write its manifest, so tests can check the agent against known savings.

Savings formulas (the contract for the optimization agent). Notation, for the rollup rows
``R`` of one (provider, model, feature) over the period:

- ``P`` = ``pricing.model_prices(provider, model, price_at)``, ``price_at`` = 00:00 UTC of the
  period's last day; ``P.cost(i, c, o)`` = ``((i - c)·in + c·cached + o·out) / 1e6``;
- ``ΣI, ΣC, ΣO`` = the sums of ``input_tokens``, ``cached_input_tokens``, ``output_tokens``;
- ``N`` = the number of days in the period; a month is 30 days, and every saving is
  extrapolated from the period's daily average: ``monthly = period_savings / N · 30``.

Kinds, with the detection rule and the period savings:

``cheaper_model``
    Detect: mean output per request ``ΣO / Σrequests <= 64`` (short, classification-like
    outputs) and ``pricing.cheaper_models(provider, model, price_at)`` is not empty.
    Target ``T`` = its first entry. Savings: ``P.cost(ΣI, ΣC, ΣO) - T.cost(ΣI, ΣC, ΣO)``.
``prompt_caching``
    Detect: ``ΣC == 0``, every row's ``min_input_tokens >= 1024`` and
    ``P.cached_input_mtok < P.input_mtok``. Savings: the cacheable prefix (each row's
    ``min_input_tokens``) read from cache on every request, less one cache write of it a day
    where the table prices writes above input:
    ``Σ_rows requests·min_input·(in - cached)/1e6 - Σ_rows min_input·max(write - in, 0)/1e6``.
``batch_api``
    Detect: ``Σno_user_requests / Σrequests >= 0.9`` and the batch price is lower.
    ``B`` = ``pricing.model_prices(provider, model, price_at, batch=True)``. Savings over
    the ``no_user_*`` token sums: ``P.cost(nI, nC, nO) - B.cost(nI, nC, nO)``.
``trim_outputs``
    ``H`` = the sum of the rows' ``output_hist``; ``p50``, ``p95`` its interpolated
    quantiles (``rollup.output_tokens_percentile``). Detect: ``p95 >= 4·p50``. Cap ``C`` =
    the smallest ``OUTPUT_TOKEN_BOUNDS`` entry ``>= 2·p50``. Excess output (conservative: each
    bucket at its lower bound) ``E = Σ_{buckets b with lower(b) >= C} H[b]·(lower(b) - C)``,
    where ``lower`` is the previous bound (the last bound for ``le_inf``). Savings:
    ``E·out/1e6``.
``response_cache``
    Detect: ``Σrepeat_requests / Σrequests >= 0.1``. Savings: ``Σrepeat_cost_nanousd / 1e9``
    (what the repeated identical requests cost; a response cache would serve them).
``failed_calls``
    Detect: ``Σerrors / Σrequests >= 0.05``. Savings: ``Σerror_cost_nanousd / 1e9``.
``deprecated_model``
    Detect: ``P.deprecated``. Replacement ``D`` =
    ``pricing.deprecated_replacement(provider, model, price_at)``. Savings:
    ``P.cost(ΣI, ΣC, ΣO) - D.cost(ΣI, ΣC, ΣO)``.

A rule that would save nothing (savings ``<= 0``) reports nothing. A (provider, model) the
price table cannot price at ``price_at`` is collected as an ``UnknownModel``: it cannot be
analysed, and it is never priced at zero. The anomaly rule lives in ``shared.usage.anomalies``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from shared import pricing
from shared.models.findings import EvidenceValue, UnknownModel
from shared.models.period import DAYS_PER_MONTH
from shared.models.recommendations import RecommendationKind
from shared.usage.histograms import OUTPUT_TOKEN_BOUNDS, bucket_key, output_tokens_percentile
from shared.usage.rollups import DailyRollup

# Detection thresholds (see the module docstring).
SHORT_OUTPUT_MEAN_TOKENS: Final = 64
CACHEABLE_PREFIX_MIN_TOKENS: Final = 1024
NON_INTERACTIVE_SHARE: Final = 0.9
LONG_TAIL_RATIO: Final = 4.0
TRIM_CAP_P50_MULTIPLE: Final = 2.0
REPEAT_SHARE: Final = 0.1
ERROR_SHARE: Final = 0.05

# The rollup subset of calls with no end user that were not batched (batch API candidates).
NON_INTERACTIVE: Final = "no_user_"

NANOUSD_PER_USD: Final = Decimal(1_000_000_000)
_MTOK: Final = Decimal(1_000_000)
_ZERO: Final = Decimal(0)
_CENT: Final = Decimal("0.01")

Evidence = dict[str, EvidenceValue]
GroupKey = tuple[str, str, str | None]


@dataclass(frozen=True, slots=True)
class Inefficiency:
    """One detected inefficiency of a (provider, model, feature), priced by its formula."""

    kind: RecommendationKind
    provider: str
    model: str
    feature: str | None
    period_savings_usd: Decimal
    # ``period_savings_usd`` extrapolated to a 30-day month (unrounded).
    monthly_savings_usd: float
    # The model to move to (cheaper_model, deprecated_model); None for the other kinds.
    target_model: str | None
    # The numbers behind the savings: token sums, shares, prices per million tokens.
    evidence: Mapping[str, EvidenceValue]


@dataclass(frozen=True, slots=True)
class SavingsScan:
    """What ``find_inefficiencies`` found, and the models it could not price to analyse."""

    inefficiencies: tuple[Inefficiency, ...] = ()
    unknown_models: tuple[UnknownModel, ...] = ()


# --- money --------------------------------------------------------------------------------


def nanousd_to_usd(nanousd: int) -> Decimal:
    """Integer 1e-9 USD (the rollups' money) as exact USD."""
    return Decimal(nanousd) / NANOUSD_PER_USD


def cents(usd: Decimal) -> float:
    """USD rounded to the cent (banker's rounding), for display fields."""
    return float(usd.quantize(_CENT, rounding=ROUND_HALF_EVEN))


def monthly_usd(period_savings: Decimal, days: int) -> Decimal:
    """Period savings extrapolated to a 30-day month from the period's daily average."""
    return period_savings / days * DAYS_PER_MONTH


def monthly(period_savings: Decimal, days: int) -> float:
    """``monthly_usd`` as a float (unrounded)."""
    return float(monthly_usd(period_savings, days))


# --- the formulas, over rollup rows -------------------------------------------------------


def _sum(rows: Iterable[DailyRollup], name: str) -> int:
    return sum(int(getattr(row, name)) for row in rows)


def token_sums(rows: Sequence[DailyRollup], subset: str = "") -> tuple[int, int, int]:
    """``(ΣI, ΣC, ΣO)``: input (cached included), cached input and output token sums.

    ``subset`` names one of the rollups' subsets (``no_user_``, ``error_``, ``repeat_``).
    """
    return (
        _sum(rows, f"{subset}input_tokens"),
        _sum(rows, f"{subset}cached_input_tokens"),
        _sum(rows, f"{subset}output_tokens"),
    )


def price_difference(
    tokens: tuple[int, int, int], prices: pricing.ModelPrices, other: pricing.ModelPrices
) -> Decimal:
    """What the token sums cost at ``prices`` less what they would cost at ``other``."""
    return prices.cost(*tokens) - other.cost(*tokens)


def cheaper_model_savings(
    rows: Sequence[DailyRollup], prices: pricing.ModelPrices, target: pricing.ModelPrices
) -> Decimal:
    return price_difference(token_sums(rows), prices, target)


def prompt_caching_savings(rows: Sequence[DailyRollup], prices: pricing.ModelPrices) -> Decimal:
    write_premium = max((prices.cache_write_mtok or prices.input_mtok) - prices.input_mtok, _ZERO)
    saved = Decimal(0)
    for row in rows:
        saved += (
            row.requests * row.min_input_tokens * (prices.input_mtok - prices.cached_input_mtok)
        )
        saved -= row.min_input_tokens * write_premium
    return saved / _MTOK


def batch_api_savings(
    rows: Sequence[DailyRollup], prices: pricing.ModelPrices, batch: pricing.ModelPrices
) -> Decimal:
    """Over the calls no end user waited for (the ``no_user_*`` sums)."""
    return price_difference(token_sums(rows, NON_INTERACTIVE), prices, batch)


def output_histogram(rows: Iterable[DailyRollup]) -> dict[str, int]:
    total: dict[str, int] = {}
    for row in rows:
        for key, count in row.output_hist.items():
            total[key] = total.get(key, 0) + count
    return total


def trim_cap(hist: Mapping[str, int]) -> int | None:
    """The output cap ``C`` when the histogram has a long tail (p95 >= 4·p50), else None."""
    p50 = output_tokens_percentile(hist, 0.5)
    p95 = output_tokens_percentile(hist, 0.95)
    if p50 is None or p95 is None or p95 < LONG_TAIL_RATIO * p50:
        return None
    return next((b for b in OUTPUT_TOKEN_BOUNDS if b >= TRIM_CAP_P50_MULTIPLE * p50), None)


def trim_excess_tokens(hist: Mapping[str, int], cap: int) -> int:
    excess = 0
    for index in range(1, len(OUTPUT_TOKEN_BOUNDS) + 1):
        lower = OUTPUT_TOKEN_BOUNDS[index - 1]
        if lower >= cap:
            excess += hist.get(bucket_key(OUTPUT_TOKEN_BOUNDS, index), 0) * (lower - cap)
    return excess


def trim_outputs_savings(
    rows: Sequence[DailyRollup], prices: pricing.ModelPrices, cap: int
) -> Decimal:
    return trim_excess_tokens(output_histogram(rows), cap) * prices.output_mtok / _MTOK


def response_cache_savings(rows: Sequence[DailyRollup]) -> Decimal:
    return nanousd_to_usd(_sum(rows, "repeat_cost_nanousd"))


def failed_calls_savings(rows: Sequence[DailyRollup]) -> Decimal:
    return nanousd_to_usd(_sum(rows, "error_cost_nanousd"))


# --- detection ----------------------------------------------------------------------------


def group_rows(rollups: Iterable[DailyRollup]) -> dict[GroupKey, list[DailyRollup]]:
    """Rollup rows by (provider, model, feature)."""
    groups: dict[GroupKey, list[DailyRollup]] = {}
    for row in rollups:
        groups.setdefault((row.provider, row.model, row.feature), []).append(row)
    return groups


def group_order(key: GroupKey) -> tuple[str, str, bool, str]:
    """A total order on group keys (``None`` features first), for results that never
    depend on the order of the rows."""
    provider, model, feature = key
    return provider, model, feature is not None, feature or ""


def find_inefficiencies(
    rollups: Iterable[DailyRollup], *, days: int, price_at: datetime
) -> SavingsScan:
    """Apply every detection rule and formula of the module docstring to the rollups.

    ``days`` is the number of days in the period (``N``), ``price_at`` 00:00 UTC of its last
    day. Groups of models the table cannot price are listed in ``unknown_models`` instead.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    found: list[Inefficiency] = []
    unknown: dict[tuple[str, str], int] = {}
    for key, rows in sorted(group_rows(rollups).items(), key=lambda item: group_order(item[0])):
        provider, model, feature = key
        requests = _sum(rows, "requests")
        if requests == 0:
            continue  # nothing was called: no rule has anything to say
        try:
            prices = pricing.model_prices(provider, model, price_at)
        except pricing.UnknownModelError:
            unknown[(provider, model)] = unknown.get((provider, model), 0) + requests
            continue
        for kind, detect in _DETECTORS.items():
            hit = detect(rows, prices, price_at)
            if hit is None or hit[0] <= 0:
                continue
            savings, target, evidence = hit
            found.append(
                Inefficiency(
                    kind=kind,
                    provider=provider,
                    model=model,
                    feature=feature,
                    period_savings_usd=savings,
                    monthly_savings_usd=monthly(savings, days),
                    target_model=target,
                    evidence=evidence,
                )
            )
    unknown_models = tuple(
        UnknownModel(provider=provider, model=model, requests=requests)
        for (provider, model), requests in sorted(unknown.items())
    )
    return SavingsScan(inefficiencies=tuple(found), unknown_models=unknown_models)


_Hit = tuple[Decimal, str | None, Evidence] | None


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4)


def _mtok(price: Decimal) -> float:
    return float(price)


def _price_evidence(prefix: str, prices: pricing.ModelPrices) -> Evidence:
    return {
        f"{prefix}input_usd_per_mtok": _mtok(prices.input_mtok),
        f"{prefix}cached_input_usd_per_mtok": _mtok(prices.cached_input_mtok),
        f"{prefix}output_usd_per_mtok": _mtok(prices.output_mtok),
    }


def _switch_evidence(
    rows: Sequence[DailyRollup], prices: pricing.ModelPrices, target: pricing.ModelPrices
) -> Evidence:
    """Token sums and both models' prices and costs: the numbers behind a model switch."""
    tokens = token_sums(rows)
    return {
        "requests": _sum(rows, "requests"),
        "input_tokens": tokens[0],
        "cached_input_tokens": tokens[1],
        "output_tokens": tokens[2],
        **_price_evidence("", prices),
        **_price_evidence("target_", target),
        "period_cost_usd": cents(prices.cost(*tokens)),
        "target_period_cost_usd": cents(target.cost(*tokens)),
    }


def _detect_cheaper(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    requests = _sum(rows, "requests")
    mean_output = _sum(rows, "output_tokens") / requests
    if mean_output > SHORT_OUTPUT_MEAN_TOKENS:
        return None
    candidates = pricing.cheaper_models(prices.provider, prices.model, at)
    if not candidates:
        return None
    target = candidates[0]
    evidence: Evidence = {
        "mean_output_tokens": round(mean_output, 1),
        **_switch_evidence(rows, prices, target),
    }
    return cheaper_model_savings(rows, prices, target), target.model, evidence


def _detect_caching(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    prefix = min(row.min_input_tokens for row in rows)
    if (
        _sum(rows, "cached_input_tokens")
        or prefix < CACHEABLE_PREFIX_MIN_TOKENS
        or prices.cached_input_mtok >= prices.input_mtok
    ):
        return None
    evidence: Evidence = {
        "min_input_tokens": prefix,
        "requests": _sum(rows, "requests"),
        "input_tokens": _sum(rows, "input_tokens"),
        "cacheable_input_tokens": sum(row.requests * row.min_input_tokens for row in rows),
        **_price_evidence("", prices),
        "cache_write_usd_per_mtok": _mtok(prices.cache_write_mtok or prices.input_mtok),
    }
    return prompt_caching_savings(rows, prices), None, evidence


def _detect_batch(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    requests = _sum(rows, "requests")
    no_user = _sum(rows, "no_user_requests")
    share = no_user / requests
    batch = pricing.model_prices(prices.provider, prices.model, at, batch=True)
    if share < NON_INTERACTIVE_SHARE or batch.list_price_mtok >= prices.list_price_mtok:
        return None
    tokens = token_sums(rows, NON_INTERACTIVE)
    evidence: Evidence = {
        "non_interactive_share": _share(no_user, requests),
        "non_interactive_requests": no_user,
        "requests": requests,
        "non_interactive_input_tokens": tokens[0],
        "non_interactive_cached_input_tokens": tokens[1],
        "non_interactive_output_tokens": tokens[2],
        **_price_evidence("", prices),
        **_price_evidence("batch_", batch),
    }
    return batch_api_savings(rows, prices, batch), None, evidence


def _detect_trim(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    hist = output_histogram(rows)
    cap = trim_cap(hist)
    if cap is None:
        return None
    evidence: Evidence = {
        "output_p50": round(output_tokens_percentile(hist, 0.5) or 0.0, 1),
        "output_p95": round(output_tokens_percentile(hist, 0.95) or 0.0, 1),
        "cap_tokens": cap,
        "excess_output_tokens": trim_excess_tokens(hist, cap),
        "output_tokens": _sum(rows, "output_tokens"),
        "requests": _sum(rows, "requests"),
        "output_usd_per_mtok": _mtok(prices.output_mtok),
    }
    return trim_outputs_savings(rows, prices, cap), None, evidence


def _detect_waste(
    rows: Sequence[DailyRollup],
    *,
    count: str,
    subset: str,
    threshold: float,
    savings: Callable[[Sequence[DailyRollup]], Decimal],
) -> _Hit:
    """A subset of calls (``count`` of them, counters ``{subset}_*``) whose whole cost is the
    saving, once it is at least ``threshold`` of the calls: repeats, failures."""
    requests = _sum(rows, "requests")
    part = _sum(rows, count)
    if part / requests < threshold:
        return None
    saved = savings(rows)
    tokens = token_sums(rows, f"{subset}_")
    evidence: Evidence = {
        f"{subset}_share": _share(part, requests),
        count: part,
        "requests": requests,
        f"{subset}_input_tokens": tokens[0],
        f"{subset}_output_tokens": tokens[2],
        f"{subset}_cost_usd": cents(saved),
    }
    return saved, None, evidence


def _detect_repeats(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    return _detect_waste(
        rows,
        count="repeat_requests",
        subset="repeat",
        threshold=REPEAT_SHARE,
        savings=response_cache_savings,
    )


def _detect_failed(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    return _detect_waste(
        rows, count="errors", subset="error", threshold=ERROR_SHARE, savings=failed_calls_savings
    )


def _detect_deprecated(
    rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime
) -> _Hit:
    if not prices.deprecated:
        return None
    replacement = pricing.deprecated_replacement(prices.provider, prices.model, at)
    if replacement is None:
        return None
    savings = cheaper_model_savings(rows, prices, replacement)
    return savings, replacement.model, _switch_evidence(rows, prices, replacement)


_Detector = Callable[[Sequence[DailyRollup], pricing.ModelPrices, datetime], _Hit]
_DETECTORS: Final[Mapping[RecommendationKind, _Detector]] = {
    "cheaper_model": _detect_cheaper,
    "prompt_caching": _detect_caching,
    "batch_api": _detect_batch,
    "trim_outputs": _detect_trim,
    "response_cache": _detect_repeats,
    "failed_calls": _detect_failed,
    "deprecated_model": _detect_deprecated,
}
