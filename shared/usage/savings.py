"""The savings rules: how the optimization agent detects an inefficiency and prices its fix.

These are pure functions over the ``usage_daily`` rollups of ``shared.usage.rollups``; the
synthetic generator (``devstack.synthetic``) plants inefficiencies of every kind and uses
the same rules to write its manifest, so tests can check the agent against known savings.

What a saving may claim (DESIGN §8). Usage records say how many tokens a call used, not what
its prompt said. Each finding has a ``basis``:

- ``measured``: every number the saving is computed from is in the records (token sums,
  recorded costs, hour-of-day counts, prefix hashes) and the prices; what the records cannot
  show (whether a smaller model answers as well, whether a cached answer may be served) is
  left to the confidence (``shared.usage.recommend``), not to the amount;
- ``upper_bound``: the saving assumes something the records cannot show (that the calls
  share a prompt prefix, and that it is as long as the shortest call's input): the most the
  change would save.

Notation, for the rollup rows ``R`` of one (provider, model, feature) over the period:

- ``P`` = ``book.model_prices(provider, model, price_at)`` (the workspace's prices,
  ``shared.price_book``), ``price_at`` = 00:00 UTC of the period's last day;
  ``P.cost(i, c, o)`` = ``((i - c)·in + c·cached + o·out) / 1e6``;
- ``ΣI, ΣC, ΣO`` = the sums of ``input_tokens``, ``cached_input_tokens``, ``output_tokens``;
- ``N`` = the number of days in the period; a month is 30 days, and every saving is
  extrapolated from the period's daily average: ``monthly = period_savings / N · 30``.

Kinds, with the detection rule and the period savings:

``cheaper_model`` (measured)
    The workload signal picks the tier the feature needs (``shared/model_tiers.yaml``): mean
    output ``ΣO / Σrequests <= 64`` (short, classification-like answers) → ``small``; else
    mean input ``>= 2,000`` with mean output ``<= 256`` (long inputs, short outputs: reading
    and extracting) → ``medium``; otherwise no finding. An error rate ``>= 5%`` moves the
    wanted tier one step up (a model that already fails often is not moved to a much
    smaller one), and the wanted tier is never above the current model's. Candidates:
    ``book.chat_models(provider, price_at)`` of the wanted tier that the list proposes and
    the workspace allows (``book.allows``), other than the current model, whose cost of the
    same tokens ``T.cost(ΣI, ΣC, ΣO)`` is below ``P.cost(ΣI, ΣC, ΣO)``; the two cheapest
    (then by id) are the targets. Savings (per target, the first's counts):
    ``P.cost(ΣI, ΣC, ΣO) - T.cost(ΣI, ΣC, ΣO)``. Another family may count the same text in
    more or fewer tokens: the wording says so.
``prompt_caching``
    Needs ``P.cached < P.in``, and a provider whose caching is modelled: ``automatic``
    (OpenAI, Azure: prompts of 1,024+ tokens are cached by the provider itself; when
    prefix hashes show repeats there, the shared prefix is too short to cache: no finding),
    ``explicit`` (a cache-write price in the table: Anthropic, Claude on Bedrock or Vertex;
    entries live ``CACHE_TTL_MINUTES``), ``gemini`` (implicit caching, or an explicit
    context cache billed for storage per hour: ``shared/model_tiers.yaml``).

    *Measured* (``explicit`` only, rows with ``prompt_prefix_hash`` counters): the calls that
    would find the cache warm are counted by hash: ``W = Σprefix_repeat_requests`` (the same
    prefix hash within the previous 5 minutes), ``K = Σprefix_hashed_requests - W`` (the
    others write it). The prefix length ``L`` = the smallest ``prefix_repeat_min_input_tokens``
    of the rows with repeats (the shortest repeated call's input, which holds the prefix).
    Detect: ``L >= 1,024``, no repeat already read from the cache
    (``Σprefix_repeat_cached_input_tokens == 0``). Savings:
    ``(W·L·(in - cached) - K·L·max(write - in, 0)) / 1e6``.

    *Upper bound* (no prefix hashes): detect ``ΣC == 0`` and ``L = min(min_input_tokens)
    >= 1,024`` (every call is long enough to cache; that they share an ``L``-token prefix is
    the assumption). From ``hour_hist`` (calls by UTC hour of each day), an hour with
    ``c >= WARM_CALLS_PER_HOUR`` calls (at least one per ``CACHE_TTL_MINUTES``, if spread
    evenly) keeps the cache warm: 1 write, ``c - 1`` reads; a quieter hour: ``c`` writes.
    ``automatic`` and ``explicit``: the same formula as measured with those ``W`` and ``K``
    (``automatic`` has no write premium; zero cached tokens there means the prompts do not
    start with a stable prefix: the advice is to reorder them). ``gemini``: an explicit
    cache is worth keeping in an hour with ``c`` calls when
    ``c·L·(in - cached) > L·(in + S)`` (one creation at the input price, ``S`` the storage
    price per million tokens per hour); over those ``H`` hours with ``W`` calls:
    ``(W·L·(in - cached) - H·L·(in + S)) / 1e6``.
``batch_api`` (measured)
    ``B`` = ``book.model_prices(provider, model, price_at, batch=True)``, lower than ``P``.
    Detect either signal that no one waits for the answers: ``Σno_user_requests / Σrequests
    >= 0.9`` (no end user; savings over the ``no_user_*`` sums), or a schedule: on at least
    ``SCHEDULE_MIN_DAYS`` days with calls, and on ``>= SCHEDULE_DAY_SHARE`` of them,
    ``>= SCHEDULE_CALL_SHARE`` of the day's calls fall inside the same
    ``SCHEDULE_WINDOW_HOURS``-hour window of ``hour_hist`` (the window holding most calls of
    the period; it may wrap past midnight). Savings over the calls not already batched
    (``ΣI - Σbatch_input_tokens``, ...): ``P.cost(i, c, o) - B.cost(i, c, o)``.
``trim_outputs`` (measured)
    ``S`` = the merged ``output_sketch`` (``shared.usage.sketches``, 1% relative accuracy).
    Detect: at least ``TRIM_MIN_REQUESTS`` calls and ``p95 >= 4·p50``. Cap ``C`` = ``2·p50``
    rounded up to a multiple of ``TRIM_CAP_STEP``. Excess ``E = excess_over(S, C)`` (counted
    from each bin's lower bound: never more than the records' excess). Savings:
    ``E·out / 1e6``.
``response_cache`` (measured)
    Detect: ``Σrepeat_requests / Σrequests >= 0.1``, a repeat being a request whose hash
    was seen on the same (provider, model, feature) in the previous 24 hours. Savings:
    ``Σrepeat_cost_nanousd / 1e9``.
``failed_calls`` (measured)
    Detect: ``Σerrors / Σrequests >= 0.05``. Savings: ``Σerror_cost_nanousd / 1e9``.
``deprecated_model`` (measured)
    Detect: ``P.deprecated``. Replacement ``D``: the closest step down in price among
    ``book.chat_models`` that the list proposes and the workspace allows and that cost no
    more per input and per output token (highest input-plus-output price, then the longest
    common id prefix, then the id). Savings: ``P.cost(ΣI, ΣC, ΣO) - D.cost(ΣI, ΣC, ΣO)``.

A rule that would save nothing (savings ``<= 0``) reports nothing. A (provider, model) the
book cannot price at ``price_at`` is collected as an ``UnknownModel``: it cannot be analysed,
and it is never priced at zero. The anomaly rule lives in ``shared.usage.anomalies``.
Every finding's ``evidence`` holds every number its saving is computed from (prices per
million tokens as the book gives them), so the saving can be recomputed from it to the cent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final

from shared import pricing
from shared.model_tiers import ModelTiers, Tier, model_tiers, tier_rank
from shared.models.findings import Basis, EvidenceValue, UnknownModel
from shared.models.period import DAYS_PER_MONTH
from shared.models.recommendations import RecommendationKind
from shared.price_book import PriceBook
from shared.usage.rollups import DailyRollup
from shared.usage.sketches import excess_over, merge_all, output_quantile

# Detection thresholds (see the module docstring).
SHORT_OUTPUT_MEAN_TOKENS: Final = 64
LONG_INPUT_MEAN_TOKENS: Final = 2000
READING_OUTPUT_MEAN_TOKENS: Final = 256
# OpenAI caches prompts of 1,024+ tokens automatically
# (https://platform.openai.com/docs/guides/prompt-caching); Anthropic's smallest cacheable
# prompt is 1,024 tokens on Sonnet and Opus (more on some Haiku models)
# (https://docs.anthropic.com/en/docs/build-with-claude/prompt-caching); Gemini's implicit
# caching starts at 1,024 tokens on Flash (https://ai.google.dev/gemini-api/docs/caching).
CACHEABLE_PREFIX_MIN_TOKENS: Final = 1024
# Anthropic's default cache lifetime, refreshed by every read (the page above).
CACHE_TTL_MINUTES: Final = 5
# Calls in an hour that keep a CACHE_TTL_MINUTES cache warm, if spread evenly.
WARM_CALLS_PER_HOUR: Final = 60 // CACHE_TTL_MINUTES
NON_INTERACTIVE_SHARE: Final = 0.9
SCHEDULE_WINDOW_HOURS: Final = 3
SCHEDULE_CALL_SHARE: Final = 0.9
SCHEDULE_DAY_SHARE: Final = 0.8
SCHEDULE_MIN_DAYS: Final = 5
LONG_TAIL_RATIO: Final = 4.0
TRIM_CAP_P50_MULTIPLE: Final = 2.0
TRIM_CAP_STEP: Final = 256
# A p95 needs at least 20 values to be more than the largest one.
TRIM_MIN_REQUESTS: Final = 20
REPEAT_SHARE: Final = 0.1
REPEAT_WINDOW_HOURS: Final = 24
ERROR_SHARE: Final = 0.05
MAX_TARGETS: Final = 2

# The rollup subset of calls with no end user that were not batched (batch API candidates).
NON_INTERACTIVE: Final = "no_user_"
HOURS: Final = tuple(f"{h:02d}" for h in range(24))

NANOUSD_PER_USD: Final = Decimal(1_000_000_000)
_MTOK: Final = Decimal(1_000_000)
_ZERO: Final = Decimal(0)
_CENT: Final = Decimal("0.01")

Evidence = dict[str, EvidenceValue]
GroupKey = tuple[str, str, str | None]
Tokens = tuple[int, int, int]


@dataclass(frozen=True, slots=True)
class Target:
    """A model to move to, priced on the group's measured tokens."""

    model: str
    tier: Tier | None
    prices: pricing.ModelPrices
    period_savings_usd: Decimal
    period_cost_usd: Decimal


@dataclass(frozen=True, slots=True)
class Inefficiency:
    """One detected inefficiency of a (provider, model, feature), priced by its formula."""

    kind: RecommendationKind
    provider: str
    model: str
    feature: str | None
    basis: Basis
    period_savings_usd: Decimal
    # ``period_savings_usd`` extrapolated to a 30-day month (unrounded).
    monthly_savings_usd: float
    # The model to move to (cheaper_model, deprecated_model); None for the other kinds.
    target_model: str | None
    # The numbers behind the savings: token sums, shares, prices per million tokens.
    evidence: Mapping[str, EvidenceValue]
    # Every model proposed, best first (the first is ``target_model``).
    targets: tuple[Target, ...] = ()


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


def price_value(value: EvidenceValue) -> Decimal:
    """A price per million tokens as evidence holds it, back to the exact ``Decimal``."""
    return Decimal(str(value))


# --- the formulas, over rollup rows -------------------------------------------------------


def _sum(rows: Iterable[DailyRollup], name: str) -> int:
    return sum(int(getattr(row, name)) for row in rows)


def token_sums(rows: Sequence[DailyRollup], subset: str = "") -> Tokens:
    """``(ΣI, ΣC, ΣO)``: input (cached included), cached input and output token sums.

    ``subset`` names one of the rollups' subsets (``no_user_``, ``error_``, ``repeat_``,
    ``batch_``).
    """
    return (
        _sum(rows, f"{subset}input_tokens"),
        _sum(rows, f"{subset}cached_input_tokens"),
        _sum(rows, f"{subset}output_tokens"),
    )


def unbatched_token_sums(rows: Sequence[DailyRollup]) -> Tokens:
    """The token sums of the calls that did not go through a batch API."""
    total, batched = token_sums(rows), token_sums(rows, "batch_")
    return (total[0] - batched[0], total[1] - batched[1], total[2] - batched[2])


def price_difference(
    tokens: Tokens, prices: pricing.ModelPrices, other: pricing.ModelPrices
) -> Decimal:
    """What the token sums cost at ``prices`` less what they would cost at ``other``."""
    return prices.cost(*tokens) - other.cost(*tokens)


def caching_savings(
    *,
    prefix_tokens: int,
    warm_requests: int,
    cold_requests: int,
    prices: pricing.ModelPrices,
) -> Decimal:
    """``(W·L·(in - cached) - K·L·max(write - in, 0)) / 1e6``: reads of a cached ``L``-token
    prefix by the ``W`` calls that find it warm, less the write premium of the ``K`` others."""
    premium = max((prices.cache_write_mtok or prices.input_mtok) - prices.input_mtok, _ZERO)
    read = warm_requests * prefix_tokens * (prices.input_mtok - prices.cached_input_mtok)
    return (read - cold_requests * prefix_tokens * premium) / _MTOK


def storage_caching_savings(
    *,
    prefix_tokens: int,
    cached_requests: int,
    cached_hours: int,
    prices: pricing.ModelPrices,
    storage_mtok_hour: Decimal,
) -> Decimal:
    """``(W·L·(in - cached) - H·L·(in + S)) / 1e6``: an explicit cache kept ``H`` hours."""
    read = cached_requests * prefix_tokens * (prices.input_mtok - prices.cached_input_mtok)
    upkeep = cached_hours * prefix_tokens * (prices.input_mtok + storage_mtok_hour)
    return (read - upkeep) / _MTOK


def trim_cap(p50: float) -> int:
    """``2·p50`` rounded up to a multiple of ``TRIM_CAP_STEP``."""
    return max(1, math.ceil(TRIM_CAP_P50_MULTIPLE * p50 / TRIM_CAP_STEP)) * TRIM_CAP_STEP


def output_sketch(rows: Iterable[DailyRollup]) -> dict[str, int]:
    return merge_all(row.output_sketch for row in rows)


def hour_cells(rows: Iterable[DailyRollup]) -> list[int]:
    """Calls per (day, UTC hour) cell with calls."""
    return [count for row in rows for count in row.hour_hist.values() if count > 0]


def warm_and_cold(rows: Iterable[DailyRollup]) -> tuple[int, int]:
    """``(W, K)`` from ``hour_hist``: calls that find a ``CACHE_TTL_MINUTES`` cache warm,
    and calls that write it. An hour with ``c >= WARM_CALLS_PER_HOUR`` calls: 1 write and
    ``c - 1`` reads; a quieter hour: ``c`` writes (calls of rows without an hour-of-day
    histogram are counted nowhere: no warm cache is claimed for them)."""
    warm = cold = 0
    for count in hour_cells(rows):
        if count >= WARM_CALLS_PER_HOUR:
            warm, cold = warm + count - 1, cold + 1
        else:
            cold += count
    return warm, cold


def storage_cache_hours(
    rows: Iterable[DailyRollup], prices: pricing.ModelPrices, storage_mtok_hour: Decimal
) -> tuple[int, int]:
    """``(W, H)``: the calls in the hours worth an explicit Gemini cache, and those hours
    (``c·(in - cached) > in + S``: per prefix token, whatever the prefix's length)."""
    per_call = prices.input_mtok - prices.cached_input_mtok
    upkeep = prices.input_mtok + storage_mtok_hour
    cells = [c for c in hour_cells(rows) if c * per_call > upkeep]
    return sum(cells), len(cells)


@dataclass(frozen=True, slots=True)
class Schedule:
    """Most of a feature's calls inside one short daily window, on most days."""

    start_hour: int
    hours: int
    window_requests: int
    requests: int
    days_on_schedule: int
    active_days: int


def _window(start: int) -> tuple[str, ...]:
    return tuple(HOURS[(start + i) % 24] for i in range(SCHEDULE_WINDOW_HOURS))


def find_schedule(rows: Sequence[DailyRollup]) -> Schedule | None:
    """The schedule of ``find_inefficiencies``' batch rule, from the rows' ``hour_hist``."""
    days: dict[str, dict[str, int]] = {}
    for row in rows:
        day = days.setdefault(row.day, {})
        for hour, count in row.hour_hist.items():
            day[hour] = day.get(hour, 0) + count
    active = {day: hours for day, hours in days.items() if sum(hours.values()) > 0}
    if len(active) < SCHEDULE_MIN_DAYS:
        return None
    totals = {hour: sum(hours.get(hour, 0) for hours in active.values()) for hour in HOURS}

    def inside(hours: Mapping[str, int], start: int) -> int:
        return sum(hours.get(hour, 0) for hour in _window(start))

    # The window holding most calls; of equal ones, one that starts with calls, then the
    # earliest (the text names its hours).
    start = max(range(24), key=lambda s: (inside(totals, s), totals[HOURS[s]] > 0, -s))
    on_schedule = sum(
        1
        for hours in active.values()
        if inside(hours, start) >= SCHEDULE_CALL_SHARE * sum(hours.values())
    )
    if on_schedule < SCHEDULE_DAY_SHARE * len(active):
        return None
    return Schedule(
        start_hour=start,
        hours=SCHEDULE_WINDOW_HOURS,
        window_requests=inside(totals, start),
        requests=sum(totals.values()),
        days_on_schedule=on_schedule,
        active_days=len(active),
    )


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


@dataclass(frozen=True, slots=True)
class _Group:
    """One (provider, model, feature) and everything its rules read."""

    provider: str
    rows: Sequence[DailyRollup]
    prices: pricing.ModelPrices
    at: datetime
    book: PriceBook
    tiers: ModelTiers


@dataclass(frozen=True, slots=True)
class _Hit:
    savings: Decimal
    basis: Basis
    evidence: Evidence
    targets: tuple[Target, ...] = ()


def find_inefficiencies(
    rollups: Iterable[DailyRollup], *, days: int, price_at: datetime, book: PriceBook
) -> SavingsScan:
    """Apply every detection rule and formula of the module docstring to the rollups.

    ``days`` is the number of days in the period (``N``), ``price_at`` 00:00 UTC of its last
    day, ``book`` the workspace's prices and allowed models. Groups of models the book cannot
    price are listed in ``unknown_models`` instead.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    tiers = model_tiers()
    found: list[Inefficiency] = []
    unknown: dict[tuple[str, str], int] = {}
    for key, rows in sorted(group_rows(rollups).items(), key=lambda item: group_order(item[0])):
        provider, model, feature = key
        requests = _sum(rows, "requests")
        if requests == 0:
            continue  # nothing was called: no rule has anything to say
        try:
            prices = book.model_prices(provider, model, price_at)
        except pricing.UnknownModelError:
            unknown[(provider, model)] = unknown.get((provider, model), 0) + requests
            continue
        group = _Group(provider, rows, prices, price_at, book, tiers)
        for kind, detect in _DETECTORS.items():
            hit = detect(group)
            if hit is None or hit.savings <= 0:
                continue
            found.append(
                Inefficiency(
                    kind=kind,
                    provider=provider,
                    model=model,
                    feature=feature,
                    basis=hit.basis,
                    period_savings_usd=hit.savings,
                    monthly_savings_usd=monthly(hit.savings, days),
                    target_model=hit.targets[0].model if hit.targets else None,
                    evidence=hit.evidence,
                    targets=hit.targets,
                )
            )
    unknown_models = tuple(
        UnknownModel(provider=provider, model=model, requests=requests)
        for (provider, model), requests in sorted(unknown.items())
    )
    return SavingsScan(inefficiencies=tuple(found), unknown_models=unknown_models)


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


def _token_evidence(prefix: str, tokens: Tokens) -> Evidence:
    return {
        f"{prefix}input_tokens": tokens[0],
        f"{prefix}cached_input_tokens": tokens[1],
        f"{prefix}output_tokens": tokens[2],
    }


def _target(group: _Group, candidate: pricing.ModelPrices, tokens: Tokens) -> Target:
    cost = candidate.cost(*tokens)
    return Target(
        model=candidate.model,
        tier=group.tiers.tier(group.provider, candidate.model),
        prices=candidate,
        period_savings_usd=group.prices.cost(*tokens) - cost,
        period_cost_usd=cost,
    )


def _switch_evidence(group: _Group, targets: Sequence[Target]) -> Evidence:
    """Token sums and every model's prices and costs: the numbers behind a model switch."""
    tokens = token_sums(group.rows)
    evidence: Evidence = {
        "requests": _sum(group.rows, "requests"),
        **_token_evidence("", tokens),
        **_price_evidence("", group.prices),
        "period_cost_usd": cents(group.prices.cost(*tokens)),
    }
    for prefix, target in zip(("target_", "second_target_"), targets, strict=False):
        evidence[f"{prefix}model"] = target.model
        evidence |= _price_evidence(prefix, target.prices)
        evidence[f"{prefix}period_cost_usd"] = cents(target.period_cost_usd)
    return evidence


def _wanted_tier(group: _Group) -> tuple[Tier, str] | None:
    """The tier the workload needs and the signal that says so (module docstring)."""
    rows = group.rows
    requests = _sum(rows, "requests")
    mean_output = _sum(rows, "output_tokens") / requests
    mean_input = _sum(rows, "input_tokens") / requests
    wanted: Tier
    if mean_output <= SHORT_OUTPUT_MEAN_TOKENS:
        wanted, signal = "small", "short_outputs"
    elif mean_input >= LONG_INPUT_MEAN_TOKENS and mean_output <= READING_OUTPUT_MEAN_TOKENS:
        wanted, signal = "medium", "long_inputs_short_outputs"
    else:
        return None
    if _sum(rows, "errors") / requests >= ERROR_SHARE:
        wanted = "medium" if wanted == "small" else "large"
    current = group.tiers.tier(group.provider, group.prices.model)
    if current is not None and tier_rank(wanted) > tier_rank(current):
        wanted = current
    return wanted, signal


def _detect_cheaper(group: _Group) -> _Hit | None:
    need = _wanted_tier(group)
    if need is None:
        return None
    wanted, signal = need
    tokens = token_sums(group.rows)
    current_cost = group.prices.cost(*tokens)
    tiers, provider = group.tiers, group.provider
    candidates = [
        _target(group, candidate, tokens)
        for candidate in group.book.chat_models(provider, group.at)
        if candidate.model != group.prices.model
        and tiers.tier(provider, candidate.model) == wanted
        and tiers.proposable(provider, candidate.model)
        and group.book.allows(provider, candidate.model)
    ]
    cheaper = sorted(
        (t for t in candidates if t.period_cost_usd < current_cost),
        key=lambda t: (t.period_cost_usd, t.model),
    )[:MAX_TARGETS]
    if not cheaper:
        return None
    requests = _sum(group.rows, "requests")
    evidence: Evidence = {
        "signal": signal,
        "wanted_tier": wanted,
        "current_tier": tiers.tier(provider, group.prices.model) or "unlisted",
        "mean_input_tokens": round(tokens[0] / requests, 1),
        "mean_output_tokens": round(tokens[2] / requests, 1),
        "errors": _sum(group.rows, "errors"),
        "error_share": _share(_sum(group.rows, "errors"), requests),
        **_switch_evidence(group, cheaper),
    }
    return _Hit(cheaper[0].period_savings_usd, "measured", evidence, tuple(cheaper))


def _caching_mode(group: _Group) -> str | None:
    prices = group.prices
    if prices.cached_input_mtok >= prices.input_mtok:
        return None
    if group.provider == "google" and prices.model.startswith("gemini"):
        return "gemini"
    if prices.cache_write_mtok is not None:
        return "explicit"
    if group.provider in ("openai", "azure"):
        return "automatic"
    return None


def _caching_evidence(group: _Group, mode: str, prefix: int) -> Evidence:
    prices = group.prices
    return {
        "mode": mode,
        "requests": _sum(group.rows, "requests"),
        "input_tokens": _sum(group.rows, "input_tokens"),
        "cached_input_tokens": _sum(group.rows, "cached_input_tokens"),
        "prefix_tokens": prefix,
        **_price_evidence("", prices),
        "cache_write_usd_per_mtok": _mtok(prices.cache_write_mtok or prices.input_mtok),
    }


def _detect_caching(group: _Group) -> _Hit | None:
    mode = _caching_mode(group)
    if mode is None:
        return None
    rows, prices = group.rows, group.prices
    if mode == "explicit" and _sum(rows, "prefix_hashed_requests"):
        return _measured_caching(group)
    if mode != "explicit" and _sum(rows, "prefix_repeat_requests"):
        # The calls do repeat a prefix (their hashes say so), yet the provider's own cache
        # read none of it: the shared prefix is shorter than it caches. Nothing to advise.
        return None
    prefix = min(row.min_input_tokens for row in rows)
    if _sum(rows, "cached_input_tokens") or prefix < CACHEABLE_PREFIX_MIN_TOKENS:
        return None
    evidence = _caching_evidence(group, mode, prefix)
    if mode == "gemini":
        storage = group.tiers.storage_usd_per_mtok_hour(group.provider, prices.model)
        if storage is None:  # pragma: no cover - every Google model has a storage price
            return None
        cached_requests, hours = storage_cache_hours(rows, prices, storage)
        evidence |= {
            "cached_requests": cached_requests,
            "cached_hours": hours,
            "storage_usd_per_mtok_hour": _mtok(storage),
        }
        savings = storage_caching_savings(
            prefix_tokens=prefix,
            cached_requests=cached_requests,
            cached_hours=hours,
            prices=prices,
            storage_mtok_hour=storage,
        )
        return _Hit(savings, "upper_bound", evidence)
    warm, cold = warm_and_cold(rows)
    evidence |= {"warm_requests": warm, "cold_requests": cold}
    if mode == "automatic":
        # The provider charges no write premium: only the reads count.
        evidence["cache_write_usd_per_mtok"] = _mtok(prices.input_mtok)
    savings = caching_savings(
        prefix_tokens=prefix,
        warm_requests=warm,
        cold_requests=cold,
        prices=prices if mode == "explicit" else _no_write_premium(prices),
    )
    return _Hit(savings, "upper_bound", evidence)


def _no_write_premium(prices: pricing.ModelPrices) -> pricing.ModelPrices:
    return pricing.ModelPrices(
        provider=prices.provider,
        model=prices.model,
        input_mtok=prices.input_mtok,
        cached_input_mtok=prices.cached_input_mtok,
        output_mtok=prices.output_mtok,
        cache_write_mtok=None,
        deprecated=prices.deprecated,
        tiered=prices.tiered,
        linear=prices.linear,
    )


def _measured_caching(group: _Group) -> _Hit | None:
    rows = group.rows
    repeated = [row for row in rows if row.prefix_repeat_requests]
    if not repeated or _sum(rows, "prefix_repeat_cached_input_tokens"):
        return None
    prefix = min(row.prefix_repeat_min_input_tokens for row in repeated)
    if prefix < CACHEABLE_PREFIX_MIN_TOKENS:
        return None
    warm = _sum(rows, "prefix_repeat_requests")
    cold = _sum(rows, "prefix_hashed_requests") - warm
    evidence = _caching_evidence(group, "explicit", prefix) | {
        "prefix_hashed_requests": _sum(rows, "prefix_hashed_requests"),
        "warm_requests": warm,
        "cold_requests": cold,
    }
    savings = caching_savings(
        prefix_tokens=prefix, warm_requests=warm, cold_requests=cold, prices=group.prices
    )
    return _Hit(savings, "measured", evidence)


def _detect_batch(group: _Group) -> _Hit | None:
    rows, prices = group.rows, group.prices
    batch = group.book.model_prices(group.provider, prices.model, group.at, batch=True)
    if batch.list_price_mtok >= prices.list_price_mtok:
        return None
    requests = _sum(rows, "requests")
    no_user = _sum(rows, "no_user_requests")
    evidence: Evidence = {
        "requests": requests,
        "non_interactive_requests": no_user,
        "non_interactive_share": _share(no_user, requests),
    }
    if no_user / requests >= NON_INTERACTIVE_SHARE:
        signal, candidates, tokens = "no_end_user", no_user, token_sums(rows, NON_INTERACTIVE)
    else:
        schedule = find_schedule(rows)
        if schedule is None:
            return None
        signal, tokens = "schedule", unbatched_token_sums(rows)
        candidates = requests - _sum(rows, "batch_requests")
        evidence |= {
            "window_start_hour": schedule.start_hour,
            "window_hours": schedule.hours,
            "window_requests": schedule.window_requests,
            "window_share": _share(schedule.window_requests, max(schedule.requests, 1)),
            "days_on_schedule": schedule.days_on_schedule,
            "active_days": schedule.active_days,
        }
    evidence |= {
        "signal": signal,
        "candidate_requests": candidates,
        **_token_evidence("candidate_", tokens),
        **_price_evidence("", prices),
        **_price_evidence("batch_", batch),
    }
    return _Hit(price_difference(tokens, prices, batch), "measured", evidence)


def _significant(value: float, digits: int = 2) -> int:
    """``value`` to ``digits`` significant figures: what a 1%-accurate sketch supports."""
    if value <= 0:
        return 0
    scale = 10 ** max(0, math.floor(math.log10(value)) + 1 - digits)
    return int(round(value / scale) * scale)


def _detect_trim(group: _Group) -> _Hit | None:
    rows = group.rows
    requests = _sum(rows, "requests")
    if requests < TRIM_MIN_REQUESTS:
        return None
    sketch = output_sketch(rows)
    p50, p95 = output_quantile(sketch, 0.5), output_quantile(sketch, 0.95)
    if p50 is None or p95 is None or p50 <= 0 or p95 < LONG_TAIL_RATIO * p50:
        return None
    cap = trim_cap(p50)
    excess = excess_over(sketch, cap)
    evidence: Evidence = {
        "output_p50": _significant(p50),
        "output_p95": _significant(p95),
        "cap_tokens": cap,
        "excess_output_tokens": excess,
        "output_tokens": _sum(rows, "output_tokens"),
        "requests": requests,
        "output_usd_per_mtok": _mtok(group.prices.output_mtok),
    }
    return _Hit(excess * group.prices.output_mtok / _MTOK, "measured", evidence)


def _detect_waste(group: _Group, *, count: str, subset: str, threshold: float) -> _Hit | None:
    """A subset of calls (``count`` of them, counters ``{subset}_*``) whose whole recorded
    cost is the saving, once it is at least ``threshold`` of the calls: repeats, failures."""
    rows = group.rows
    requests = _sum(rows, "requests")
    part = _sum(rows, count)
    if part / requests < threshold:
        return None
    nanousd = _sum(rows, f"{subset}_cost_nanousd")
    tokens = token_sums(rows, f"{subset}_")
    evidence: Evidence = {
        f"{subset}_share": _share(part, requests),
        count: part,
        "requests": requests,
        f"{subset}_input_tokens": tokens[0],
        f"{subset}_output_tokens": tokens[2],
        # Exact (1e-9 USD fits a float's digits): the saving is recomputed from it.
        f"{subset}_cost_usd": float(nanousd_to_usd(nanousd)),
    }
    return _Hit(nanousd_to_usd(nanousd), "measured", evidence)


def _detect_repeats(group: _Group) -> _Hit | None:
    hit = _detect_waste(group, count="repeat_requests", subset="repeat", threshold=REPEAT_SHARE)
    if hit is not None:
        hit.evidence["window_hours"] = REPEAT_WINDOW_HOURS
    return hit


def _detect_failed(group: _Group) -> _Hit | None:
    return _detect_waste(group, count="errors", subset="error", threshold=ERROR_SHARE)


def _common_prefix(a: str, b: str) -> int:
    length = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        length += 1
    return length


def _detect_deprecated(group: _Group) -> _Hit | None:
    current = group.prices
    if not current.deprecated:
        return None
    provider, tiers = group.provider, group.tiers
    candidates = sorted(
        (
            c
            for c in group.book.chat_models(provider, group.at)
            if c.model != current.model
            and tiers.proposable(provider, c.model)
            and group.book.allows(provider, c.model)
            and c.input_mtok <= current.input_mtok
            and c.output_mtok <= current.output_mtok
        ),
        key=lambda c: (-c.list_price_mtok, -_common_prefix(c.model, current.model), c.model),
    )
    if not candidates:
        return None
    target = _target(group, candidates[0], token_sums(group.rows))
    evidence = _switch_evidence(group, [target])
    return _Hit(target.period_savings_usd, "measured", evidence, (target,))


_Detector = Callable[[_Group], _Hit | None]
_DETECTORS: Final[Mapping[RecommendationKind, _Detector]] = {
    "cheaper_model": _detect_cheaper,
    "prompt_caching": _detect_caching,
    "batch_api": _detect_batch,
    "trim_outputs": _detect_trim,
    "response_cache": _detect_repeats,
    "failed_calls": _detect_failed,
    "deprecated_model": _detect_deprecated,
}
