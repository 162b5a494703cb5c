"""Deterministic synthetic usage for a workspace, with planted inefficiencies of known worth.

``generate(days=30, end=date(...), seed=7)`` returns plain-form usage records (DESIGN §5)
for the ``days`` UTC days ending with ``end``, their normalized ``UsageRecord``s, and a
``Manifest`` of what was planted: one inefficiency of each kind below, each with its monthly
savings, plus one spend anomaly. Healthy background traffic triggers none of the detection
rules. The same seed and arguments always give the same records.

Savings formulas (the contract for the optimization agent, which applies them to the
``usage_daily`` rollups of ``shared.usage.rollup``). Notation, for the rollup rows ``R`` of
one (provider, model, feature) over the period:

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

The anomaly: the day whose total cost is at least 3 times the median of the 7 days before it
(the rolling median); the manifest names the day and the (provider, model, feature) whose
cost rose the most that day.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final, Literal, NamedTuple

from shared import pricing
from shared.models.period import DAYS_PER_MONTH
from shared.models.recommendations import RecommendationKind
from shared.models.usage import UsageRecord, parse_usage_record
from shared.usage.rollup import (
    OUTPUT_TOKEN_BOUNDS,
    DailyRollup,
    accumulate,
    bucket_key,
    output_tokens_percentile,
)

DEFAULT_SEED: Final = 7
MIN_DAYS: Final = 8  # the anomaly needs a 7-day rolling median before it

# Detection thresholds (see the module docstring).
SHORT_OUTPUT_MEAN_TOKENS: Final = 64
CACHEABLE_PREFIX_MIN_TOKENS: Final = 1024
NON_INTERACTIVE_SHARE: Final = 0.9
LONG_TAIL_RATIO: Final = 4.0
TRIM_CAP_P50_MULTIPLE: Final = 2.0
REPEAT_SHARE: Final = 0.1
ERROR_SHARE: Final = 0.05
ANOMALY_RATIO: Final = 3.0
ROLLING_WINDOW_DAYS: Final = 7

_MTOK: Final = Decimal(1_000_000)
_ZERO: Final = Decimal(0)


@dataclass(frozen=True, slots=True)
class PlantedInefficiency:
    """One planted inefficiency, its monthly savings, and the numbers behind them."""

    kind: RecommendationKind
    provider: str
    model: str
    feature: str
    monthly_savings_usd: float
    # The model to move to (cheaper_model, deprecated_model); None for the other kinds.
    target_model: str | None
    evidence: Mapping[str, float | int | str]


@dataclass(frozen=True, slots=True)
class PlantedAnomaly:
    """The spend anomaly: the day, what drove it, and how far above the rolling median."""

    day: str
    provider: str
    model: str
    feature: str
    day_cost_usd: float
    rolling_median_usd: float


@dataclass(frozen=True, slots=True)
class Manifest:
    start_day: str
    end_day: str
    days: int
    price_at: datetime
    inefficiencies: tuple[PlantedInefficiency, ...]
    anomaly: PlantedAnomaly

    def by_kind(self, kind: RecommendationKind) -> PlantedInefficiency:
        return next(item for item in self.inefficiencies if item.kind == kind)

    def as_dict(self) -> dict[str, Any]:
        """The manifest as JSON-ready data."""
        data = asdict(self)
        data["price_at"] = self.price_at.isoformat()
        return data


@dataclass(frozen=True, slots=True)
class SyntheticWorkspace:
    raw: list[dict[str, Any]]  # plain-form records, as a client would send them
    records: list[UsageRecord]
    manifest: Manifest


# --- the formulas, over rollup rows -------------------------------------------------------


def _sum(rows: Iterable[DailyRollup], field: str) -> int:
    return sum(int(getattr(row, field)) for row in rows)


def _usd(amount: Decimal) -> float:
    return float(amount)


def cheaper_model_savings(
    rows: Sequence[DailyRollup], prices: pricing.ModelPrices, target: pricing.ModelPrices
) -> Decimal:
    totals = (_sum(rows, "input_tokens"), _sum(rows, "cached_input_tokens"))
    output = _sum(rows, "output_tokens")
    return prices.cost(*totals, output) - target.cost(*totals, output)


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
    tokens = (
        _sum(rows, "no_user_input_tokens"),
        _sum(rows, "no_user_cached_input_tokens"),
        _sum(rows, "no_user_output_tokens"),
    )
    return prices.cost(*tokens) - batch.cost(*tokens)


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
    return Decimal(_sum(rows, "repeat_cost_nanousd")) / Decimal(1_000_000_000)


def failed_calls_savings(rows: Sequence[DailyRollup]) -> Decimal:
    return Decimal(_sum(rows, "error_cost_nanousd")) / Decimal(1_000_000_000)


def monthly(period_savings: Decimal, days: int) -> float:
    """Period savings extrapolated to a 30-day month from the period's daily average."""
    return _usd(period_savings / days * DAYS_PER_MONTH)


GroupKey = tuple[str, str, str | None]


def group_rows(rollups: Iterable[DailyRollup]) -> dict[GroupKey, list[DailyRollup]]:
    """Rollup rows by (provider, model, feature)."""
    groups: dict[GroupKey, list[DailyRollup]] = {}
    for row in rollups:
        groups.setdefault((row.provider, row.model, row.feature), []).append(row)
    return groups


def find_inefficiencies(
    rollups: Iterable[DailyRollup], *, days: int, price_at: datetime
) -> list[PlantedInefficiency]:
    """Apply every detection rule and formula of the module docstring to the rollups."""
    found: list[PlantedInefficiency] = []
    for (provider, model, feature), rows in sorted(
        group_rows(rollups).items(), key=lambda item: tuple(str(part) for part in item[0])
    ):
        try:
            prices = pricing.model_prices(provider, model, price_at)
        except pricing.UnknownModelError:
            continue
        for kind, detect in _DETECTORS.items():
            hit = detect(rows, prices, price_at)
            if hit is not None:
                savings, target, evidence = hit
                found.append(
                    PlantedInefficiency(
                        kind=kind,
                        provider=provider,
                        model=model,
                        feature=feature or "",
                        monthly_savings_usd=monthly(savings, days),
                        target_model=target,
                        evidence=evidence,
                    )
                )
    return found


Evidence = dict[str, float | int | str]
_Hit = tuple[Decimal, str | None, Evidence] | None


def _detect_cheaper(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    requests = _sum(rows, "requests")
    mean_output = _sum(rows, "output_tokens") / requests
    if mean_output > SHORT_OUTPUT_MEAN_TOKENS:
        return None
    candidates = pricing.cheaper_models(prices.provider, prices.model, at)
    if not candidates:
        return None
    target = candidates[0]
    evidence: Evidence = {"mean_output_tokens": mean_output, "requests": requests}
    return cheaper_model_savings(rows, prices, target), target.model, evidence


def _detect_caching(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    prefix = min(row.min_input_tokens for row in rows)
    if (
        _sum(rows, "cached_input_tokens")
        or prefix < CACHEABLE_PREFIX_MIN_TOKENS
        or prices.cached_input_mtok >= prices.input_mtok
    ):
        return None
    evidence: Evidence = {"min_input_tokens": prefix, "requests": _sum(rows, "requests")}
    return prompt_caching_savings(rows, prices), None, evidence


def _detect_batch(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    requests = _sum(rows, "requests")
    share = _sum(rows, "no_user_requests") / requests
    batch = pricing.model_prices(prices.provider, prices.model, at, batch=True)
    if share < NON_INTERACTIVE_SHARE or batch.list_price_mtok >= prices.list_price_mtok:
        return None
    evidence: Evidence = {"non_interactive_share": share, "requests": requests}
    return batch_api_savings(rows, prices, batch), None, evidence


def _detect_trim(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    hist = output_histogram(rows)
    cap = trim_cap(hist)
    if cap is None:
        return None
    evidence: Evidence = {
        "output_p50": output_tokens_percentile(hist, 0.5) or 0.0,
        "output_p95": output_tokens_percentile(hist, 0.95) or 0.0,
        "cap_tokens": cap,
        "excess_output_tokens": trim_excess_tokens(hist, cap),
    }
    return trim_outputs_savings(rows, prices, cap), None, evidence


def _detect_repeats(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    requests = _sum(rows, "requests")
    share = _sum(rows, "repeat_requests") / requests
    if share < REPEAT_SHARE:
        return None
    evidence: Evidence = {"repeat_share": share, "requests": requests}
    return response_cache_savings(rows), None, evidence


def _detect_failed(rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime) -> _Hit:
    requests = _sum(rows, "requests")
    share = _sum(rows, "errors") / requests
    if share < ERROR_SHARE:
        return None
    evidence: Evidence = {"error_share": share, "requests": requests}
    return failed_calls_savings(rows), None, evidence


def _detect_deprecated(
    rows: Sequence[DailyRollup], prices: pricing.ModelPrices, at: datetime
) -> _Hit:
    if not prices.deprecated:
        return None
    replacement = pricing.deprecated_replacement(prices.provider, prices.model, at)
    if replacement is None:
        return None
    savings = cheaper_model_savings(rows, prices, replacement)
    evidence: Evidence = {"requests": _sum(rows, "requests")}
    return savings, replacement.model, evidence


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


# --- the workload -------------------------------------------------------------------------


class _Call(NamedTuple):
    """The shape of one generated call."""

    input_tokens: int
    output_tokens: int
    latency_ms: float
    user: str | None
    cached_input_tokens: int = 0
    status: Literal["ok", "error"] = "ok"
    request_hash: str | None = None


@dataclass(frozen=True, slots=True)
class _Feature:
    name: str
    provider: str
    model: str
    per_day: int
    call: Callable[[random.Random], _Call]
    hours: tuple[int, int] = (7, 22)  # UTC hours the feature runs in
    plants: RecommendationKind | None = None


_USERS: Final = tuple(f"user-{n:02d}@example.com" for n in range(1, 25))
_FAQ_QUESTIONS: Final = 15


def _user(rng: random.Random) -> str:
    return rng.choice(_USERS)


def _classify(rng: random.Random) -> _Call:
    # A label of a few tokens out of an expensive model.
    return _Call(rng.randint(300, 700), rng.randint(3, 12), rng.uniform(350, 900), _user(rng))


def _contract(rng: random.Random) -> _Call:
    # A 6,000-token system prompt and clause library in front of every document, never cached.
    prompt = 6000 + rng.randint(200, 1500)
    return _Call(prompt, rng.randint(250, 450), rng.uniform(2500, 6000), _user(rng))


def _digest(rng: random.Random) -> _Call:
    # A nightly job: no end user waits for it.
    return _Call(rng.randint(400, 900), rng.randint(300, 600), rng.uniform(3000, 7000), None)


def _summarize(rng: random.Random) -> _Call:
    # Mostly short summaries, but one in seven runs on for thousands of tokens.
    long_tail = rng.random() < 0.15
    output = rng.randint(2500, 6000) if long_tail else rng.randint(150, 450)
    return _Call(rng.randint(600, 1000), output, 20 * output + rng.uniform(300, 800), _user(rng))


def _faq(rng: random.Random) -> _Call:
    # A few popular questions asked over and over: identical requests, identical answers.
    question = min(int(rng.expovariate(0.35)), _FAQ_QUESTIONS - 1)
    shape = random.Random(question)  # noqa: S311 - a fixed shape per question, not security
    input_tokens, output = shape.randint(200, 800), shape.randint(80, 250)
    return _Call(
        input_tokens,
        output,
        rng.uniform(600, 1800),
        _user(rng),
        request_hash=f"faq-{question:02d}",
    )


def _extract(rng: random.Random) -> _Call:
    # A quarter of the calls time out or return unparsable JSON and are retried.
    status: Literal["ok", "error"] = "error" if rng.random() < 0.25 else "ok"
    return _Call(
        rng.randint(700, 1000),
        rng.randint(200, 400),
        rng.uniform(1500, 4000),
        _user(rng),
        status=status,
    )


def _legacy(rng: random.Random) -> _Call:
    return _Call(rng.randint(400, 900), rng.randint(100, 300), rng.uniform(400, 1200), _user(rng))


def _chat(rng: random.Random) -> _Call:
    # Healthy: the 2,048-token system prompt is read from the prompt cache; rare errors;
    # every request hashed, none repeated.
    status: Literal["ok", "error"] = "error" if rng.random() < 0.005 else "ok"
    return _Call(
        2048 + rng.randint(100, 800),
        rng.randint(200, 600),
        rng.uniform(800, 2500),
        _user(rng),
        cached_input_tokens=1536,
        status=status,
        request_hash=f"chat-{rng.getrandbits(64):016x}",
    )


def _code_review(rng: random.Random) -> _Call:
    return _Call(rng.randint(500, 1000), rng.randint(300, 700), rng.uniform(1500, 5000), _user(rng))


def _research(rng: random.Random) -> _Call:
    return _Call(
        rng.randint(700, 1000), rng.randint(1500, 2500), rng.uniform(20000, 40000), _user(rng)
    )


_FEATURES: Final = (
    _Feature("classify_ticket", "openai", "gpt-4o", 40, _classify, plants="cheaper_model"),
    _Feature("contract_review", "openai", "gpt-4.1", 15, _contract, plants="prompt_caching"),
    _Feature("nightly_digest", "openai", "gpt-4o", 30, _digest, hours=(2, 4), plants="batch_api"),
    _Feature(
        "summarize_thread", "anthropic", "claude-sonnet-4-6", 30, _summarize, plants="trim_outputs"
    ),
    _Feature("faq_answer", "openai", "gpt-4o", 60, _faq, plants="response_cache"),
    _Feature("extract_invoice", "openai", "gpt-4.1", 30, _extract, plants="failed_calls"),
    _Feature("legacy_tagging", "cohere", "command-light", 30, _legacy, plants="deprecated_model"),
    _Feature("chat_assistant", "openai", "gpt-4o-mini", 60, _chat),
    _Feature("code_review", "anthropic", "claude-haiku-4-5", 20, _code_review),
)
# One day, an agent loop on a feature that does not otherwise run drives spend far up.
_ANOMALY: Final = _Feature("research_agent", "anthropic", "claude-sonnet-4-6", 250, _research)
_ANOMALY_DAYS_BEFORE_END: Final = 8


def _calls(
    feature: _Feature, day: date, count: int, rng: random.Random, seed: int
) -> Iterable[dict[str, Any]]:
    start_hour, end_hour = feature.hours
    for i in range(count):
        seconds = rng.randint(start_hour * 3600, end_hour * 3600 - 1)
        ts = datetime.combine(day, time(tzinfo=UTC)) + timedelta(seconds=seconds)
        call = feature.call(rng)
        raw: dict[str, Any] = {
            "id": f"syn{seed}-{day.isoformat()}-{feature.name}-{i:05d}",
            "model": feature.model,
            "provider": feature.provider,
            "input_tokens": call.input_tokens,
            "cached_input_tokens": call.cached_input_tokens,
            "output_tokens": call.output_tokens,
            "latency_ms": round(call.latency_ms, 1),
            "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "feature": feature.name,
            "status": call.status,
            "batch": False,
        }
        if call.user is not None:
            raw["user"] = call.user
        if call.request_hash is not None:
            raw["request_hash"] = call.request_hash
        yield raw


def generate(
    *, end: date, days: int = 30, seed: int = DEFAULT_SEED, scale: int = 1
) -> SyntheticWorkspace:
    """Synthetic usage for the ``days`` UTC days ending with ``end`` (inclusive).

    ``scale`` multiplies every feature's daily call count (the default, about 300 calls a
    day, keeps a 30-day workspace to ~9,000 records). ``days`` must be at least ``MIN_DAYS``.
    """
    if days < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS} (the anomaly needs a rolling median)")
    if scale < 1:
        raise ValueError("scale must be at least 1")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not security
    start = end - timedelta(days=days - 1)
    # Late in the period, but after a full rolling-median window.
    anomaly_day = start + timedelta(
        days=max(ROLLING_WINDOW_DAYS, days - 1 - _ANOMALY_DAYS_BEFORE_END)
    )
    raw: list[dict[str, Any]] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for feature in _FEATURES:
            # +-20% day-to-day variation keeps the series realistic but the median stable.
            count = round(feature.per_day * scale * rng.uniform(0.8, 1.2))
            raw.extend(_calls(feature, day, count, rng, seed))
        if day == anomaly_day:
            raw.extend(_calls(_ANOMALY, day, _ANOMALY.per_day * scale, rng, seed))
    now = datetime.combine(end + timedelta(days=1), time(tzinfo=UTC))
    records = [parse_usage_record(item, now=now) for item in raw]
    return SyntheticWorkspace(raw=raw, records=records, manifest=_manifest(records, start, end))


def _manifest(records: Sequence[UsageRecord], start: date, end: date) -> Manifest:
    days = (end - start).days + 1
    price_at = datetime.combine(end, time(tzinfo=UTC))
    rollups = list(accumulate(records).daily.values())
    found = {
        (item.kind, item.feature): item
        for item in find_inefficiencies(rollups, days=days, price_at=price_at)
    }
    expected = [(f.plants, f.name) for f in _FEATURES if f.plants is not None]
    missing = [pair for pair in expected if pair not in found]
    if missing:
        # E.g. a period before the table has OpenAI batch prices (2026-10-14).
        raise RuntimeError(
            f"planted inefficiencies not detectable at {price_at:%Y-%m-%d}: {missing}"
        )
    planted = tuple(found[pair] for pair in expected)
    return Manifest(
        start_day=start.isoformat(),
        end_day=end.isoformat(),
        days=days,
        price_at=price_at,
        inefficiencies=planted,
        anomaly=_anomaly(rollups),
    )


def daily_costs(rollups: Iterable[DailyRollup]) -> dict[str, int]:
    """Total cost (1e-9 USD) per day."""
    totals: dict[str, int] = {}
    for row in rollups:
        totals[row.day] = totals.get(row.day, 0) + row.cost_nanousd
    return totals


def find_anomalies(rollups: Sequence[DailyRollup]) -> list[PlantedAnomaly]:
    """Days costing ``>= ANOMALY_RATIO`` times the median of the 7 days before, with driver."""
    totals = daily_costs(rollups)
    days = sorted(totals)
    found = []
    for index in range(ROLLING_WINDOW_DAYS, len(days)):
        window = [totals[d] for d in days[index - ROLLING_WINDOW_DAYS : index]]
        median = statistics.median(window)
        day = days[index]
        if totals[day] < ANOMALY_RATIO * median:
            continue
        driver = _driver(rollups, day, days[index - ROLLING_WINDOW_DAYS : index])
        found.append(
            PlantedAnomaly(
                day=day,
                provider=driver.provider,
                model=driver.model,
                feature=driver.feature or "",
                day_cost_usd=totals[day] / 1e9,
                rolling_median_usd=median / 1e9,
            )
        )
    return found


def _driver(rollups: Sequence[DailyRollup], day: str, window: Sequence[str]) -> DailyRollup:
    """The day's row whose cost rose the most over its own mean in the window."""

    def rise(row: DailyRollup) -> float:
        before = [
            r.cost_nanousd
            for r in rollups
            if r.day in window
            and (r.provider, r.model, r.feature) == (row.provider, row.model, row.feature)
        ]
        return row.cost_nanousd - sum(before) / len(window)

    return max((row for row in rollups if row.day == day), key=rise)


def _anomaly(rollups: Sequence[DailyRollup]) -> PlantedAnomaly:
    anomalies = find_anomalies(rollups)
    if len(anomalies) != 1:
        raise RuntimeError(f"expected exactly the planted anomaly, found {len(anomalies)}")
    return anomalies[0]
