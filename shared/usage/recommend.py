"""The optimization agent's computation: priced, ranked recommendations over daily rollups.

``recommend`` applies the detection rules and savings formulas of ``shared.usage.savings``
to the period's ``usage_daily`` rollups and words each finding as a ``Recommendation``: a
specific title, a sentence showing the numbers behind the saving, the saving per 30-day
month, a confidence, the evidence, and the steps to take. Savings are computed, never
guessed; the wording only quotes numbers that are in the evidence or the saving itself.
Pure: no I/O, no clock (the period says which prices apply).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from shared.models.findings import EvidenceValue, OptimizationReport, Recommendation
from shared.models.period import PeriodRange, day_start
from shared.models.recommendations import RecommendationKind
from shared.usage.report import days_of
from shared.usage.rollups import DailyRollup
from shared.usage.savings import Inefficiency, cents, find_inefficiencies, monthly_usd

# How sure each kind of saving is, before data volume: the chance that acting on it saves
# about what it says without hurting the feature.
BASE_CONFIDENCE: Final[Mapping[RecommendationKind, float]] = {
    # Measured exactly (the recorded cost of failed calls) and removing failures only helps;
    # short of 1 because some failures (rate limits, provider outages) are not the team's.
    "failed_calls": 0.9,
    # The table says the model is going away: moving is needed anyway, and the replacement
    # is the same provider's closest step down in price; its quality is not measured.
    "deprecated_model": 0.85,
    # The same token sums at the batch price: exact, if the work can wait (no end user was
    # waiting for 90%+ of the calls, but a service may still be).
    "batch_api": 0.8,
    # Identical requests are measured by hash; whether a cached answer may be served
    # (freshness, sampling on purpose) is not.
    "response_cache": 0.75,
    # Assumes the shortest input of each day is a prefix every call shares: inferred from
    # the rollups' minimum input, not observed.
    "prompt_caching": 0.65,
    # Short outputs suggest a classification-like task a smaller model handles, but the
    # smaller model's answers must be checked.
    "cheaper_model": 0.6,
    # The long tail may be answers the users need; the cap changes what they get.
    "trim_outputs": 0.5,
}
# Below this many calls in the period, extrapolating to a month is shakier: confidence is
# scaled by LOW_VOLUME_FACTOR.
MIN_CONFIDENT_REQUESTS: Final = 100
LOW_VOLUME_FACTOR: Final = 0.75


@dataclass(frozen=True, slots=True)
class _Wording:
    title: str
    detail: str
    steps: list[str]


def recommend(
    rows: Iterable[DailyRollup], period: PeriodRange, *, min_monthly_savings_usd: float = 0.0
) -> OptimizationReport:
    """Ranked recommendations for the period's rollups (rows outside the period are ignored).

    Prices are those at 00:00 UTC of the period's last day; savings are extrapolated from the
    period's daily average to a 30-day month. Recommendations saving less than
    ``min_monthly_savings_usd`` a month, or nothing once rounded to the cent, are dropped;
    the rest are ranked by monthly saving, largest first.
    """
    days = days_of(period)
    wanted = set(days)
    scan = find_inefficiencies(
        [row for row in rows if row.day in wanted],
        days=len(days),
        price_at=day_start(date.fromisoformat(days[-1])),
    )
    kept = [
        recommendation
        for recommendation in (_recommendation(item, len(days)) for item in scan.inefficiencies)
        if recommendation.monthly_savings_usd > 0
        and recommendation.monthly_savings_usd >= min_monthly_savings_usd
    ]
    kept.sort(key=lambda r: (-r.monthly_savings_usd, r.kind, r.provider, r.model, r.feature or ""))
    # Summed as shown (to the cent), so the total is the sum of the displayed savings.
    total = sum((Decimal(str(r.monthly_savings_usd)) for r in kept), Decimal(0))
    return OptimizationReport(
        period=period,
        recommendations=kept,
        total_monthly_savings_usd=cents(total),
        unknown_models=list(scan.unknown_models),
    )


def confidence(kind: RecommendationKind, requests: int) -> float:
    """``BASE_CONFIDENCE`` of the kind, lowered when few calls back the extrapolation."""
    base = BASE_CONFIDENCE[kind]
    return base if requests >= MIN_CONFIDENT_REQUESTS else round(base * LOW_VOLUME_FACTOR, 2)


def _recommendation(item: Inefficiency, days: int) -> Recommendation:
    monthly = cents(monthly_usd(item.period_savings_usd, days))
    evidence: dict[str, EvidenceValue] = {
        **item.evidence,
        "days": days,
        "period_savings_usd": cents(item.period_savings_usd),
    }
    wording = _WORDING[item.kind](item, evidence, monthly)
    return Recommendation(
        kind=item.kind,
        title=wording.title,
        detail=wording.detail,
        monthly_savings_usd=monthly,
        confidence=confidence(item.kind, int(evidence.get("requests", 0))),
        evidence=evidence,
        steps=wording.steps,
        provider=item.provider,
        model=item.model,
        feature=item.feature,
        target_model=item.target_model,
    )


# --- wording ------------------------------------------------------------------------------


def _n(value: EvidenceValue) -> str:
    """A count (or a token mean such as 343.4) with thousands separators."""
    number = float(value)
    return f"{int(number):,}" if number.is_integer() else f"{number:,}"


def _usd(value: EvidenceValue) -> str:
    return f"${float(value):,.2f}"


def _price(value: EvidenceValue) -> str:
    """A price per million tokens: at least cents, and every digit the table gives."""
    text = f"{float(value):.6f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"


def _share(value: EvidenceValue) -> str:
    return f"{float(value) * 100:.1f}%"


def _scope(item: Inefficiency) -> str:
    return f"feature `{item.feature}`" if item.feature is not None else "calls with no feature"


def _per_month(monthly: float) -> str:
    return f"{_usd(monthly)}/month"


def _switch_prices(e: Mapping[str, EvidenceValue], prefix: str) -> str:
    return f"{_price(e[prefix + 'input_usd_per_mtok'])}/{_price(e[prefix + 'output_usd_per_mtok'])}"


def _switch_detail(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> str:
    cached = int(e["cached_input_tokens"])
    cached_note = f" ({_n(cached)} of them cached)" if cached else ""
    return (
        f"Over {e['days']} days its {_n(e['input_tokens'])} input{cached_note} and "
        f"{_n(e['output_tokens'])} output tokens cost {_usd(e['period_cost_usd'])} at "
        f"{item.model}'s "
        f"{_switch_prices(e, '')} per million input/output tokens, and would cost "
        f"{_usd(e['target_period_cost_usd'])} at {item.target_model}'s "
        f"{_switch_prices(e, 'target_')}: {_per_month(monthly)} less."
    )


def _cheaper_model(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope, target = _scope(item), item.target_model
    return _Wording(
        title=f"Move {scope} from {item.model} to {target}",
        detail=(
            f"{_n(e['requests'])} calls of {scope} averaged {_n(e['mean_output_tokens'])} output "
            "tokens: short, classification-like answers that a smaller model usually gets "
            f"right. {_switch_detail(item, e, monthly)}"
        ),
        steps=[
            f"Replay a sample of {scope}'s requests on {target} and compare the answers",
            f"Switch {scope} to {target} if they hold up",
            "Watch its error rate and answer quality for a week after the switch",
        ],
    )


def _deprecated_model(
    item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float
) -> _Wording:
    scope, target = _scope(item), item.target_model
    return _Wording(
        title=f"Replace deprecated {item.model} with {target} in {scope}",
        detail=(
            f"The price table marks {item.model} deprecated; {target} is the same provider's "
            f"closest step down in price. {_switch_detail(item, e, monthly)}"
        ),
        steps=[
            f"Run {scope}'s test set on {target}",
            f"Switch {scope} to {target} before {item.model} is retired",
            f"Remove {item.model} from the configuration",
        ],
    )


def _prompt_caching(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope = _scope(item)
    write = float(e["cache_write_usd_per_mtok"])
    write_note = (
        f", less one cache write a day at {_price(write)}"
        if write > float(e["input_usd_per_mtok"])
        else ""
    )
    return _Wording(
        title=f"Cache the shared prompt prefix of {scope} on {item.model}",
        detail=(
            f"None of the {_n(e['requests'])} calls of {scope} read from the prompt cache, yet "
            f"each sent at least {_n(e['min_input_tokens'])} input tokens: "
            f"{_n(e['cacheable_input_tokens'])} of its {_n(e['input_tokens'])} input tokens "
            f"repeat a prefix. Read from the cache they cost "
            f"{_price(e['cached_input_usd_per_mtok'])} instead of "
            f"{_price(e['input_usd_per_mtok'])} per million{write_note}: "
            f"{_per_month(monthly)}."
        ),
        steps=[
            "Put the fixed instructions and reference text first in the prompt, "
            "the per-request text last",
            f"Enable prompt caching for {item.model} (cache markers where the provider needs them)",
            "Check that cached input tokens appear in the usage records",
        ],
    )


def _batch_api(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope = _scope(item)
    return _Wording(
        title=f"Send {scope} on {item.model} through the batch API",
        detail=(
            f"{_n(e['non_interactive_requests'])} of the {_n(e['requests'])} calls of {scope} "
            f"({_share(e['non_interactive_share'])}) had no end user waiting. Their "
            f"{_n(e['non_interactive_input_tokens'])} input and "
            f"{_n(e['non_interactive_output_tokens'])} output tokens cost "
            f"{_switch_prices(e, '')} per million input/output tokens at standard prices and "
            f"{_switch_prices(e, 'batch_')} through the batch API: {_per_month(monthly)} less."
        ),
        steps=[
            f"Collect {scope}'s requests into batch jobs",
            f"Submit them through {item.provider}'s batch API and collect the results",
            "Mark the batched calls batch=true in the usage records",
        ],
    )


def _trim_outputs(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope, cap = _scope(item), _n(e["cap_tokens"])
    return _Wording(
        title=f"Cap the output of {scope} on {item.model} at {cap} tokens",
        detail=(
            f"Half of the {_n(e['requests'])} calls of {scope} return at most "
            f"{_n(e['output_p50'])} output tokens, but one in twenty returns "
            f"{_n(e['output_p95'])} or more. A cap of {cap} tokens would cut at least "
            f"{_n(e['excess_output_tokens'])} of its {_n(e['output_tokens'])} output tokens, at "
            f"{_price(e['output_usd_per_mtok'])} per million: {_per_month(monthly)}."
        ),
        steps=[
            f"Set max_tokens to {cap} for {scope}",
            "Ask for concise answers in the prompt",
            "Check that answers reaching the cap are not cut where users need them",
        ],
    )


def _response_cache(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope = _scope(item)
    return _Wording(
        title=f"Cache responses to repeated requests of {scope} on {item.model}",
        detail=(
            f"{_n(e['repeat_requests'])} of the {_n(e['requests'])} calls of {scope} "
            f"({_share(e['repeat_share'])}) repeated a request already made that day, and "
            f"cost {_usd(e['repeat_cost_usd'])}; a response cache would have answered them: "
            f"{_per_month(monthly)}."
        ),
        steps=[
            "Key a response cache on the request hash",
            "Serve repeats from it for up to a day",
            "Bypass the cache where answers must be fresh",
        ],
    )


def _failed_calls(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope = _scope(item)
    return _Wording(
        title=f"Fix the failing calls of {scope} on {item.model}",
        detail=(
            f"{_n(e['errors'])} of the {_n(e['requests'])} calls of {scope} "
            f"({_share(e['error_share'])}) failed, spending {_n(e['error_input_tokens'])} "
            f"input and {_n(e['error_output_tokens'])} output tokens "
            f"({_usd(e['error_cost_usd'])}) for nothing: {_per_month(monthly)}."
        ),
        steps=[
            "Group the failures by error type",
            "Fix the most common cause (timeouts, invalid output, rate limits)",
            "Use structured output and request validation so fewer calls need a retry",
        ],
    )


_Wordsmith = Callable[[Inefficiency, Mapping[str, EvidenceValue], float], _Wording]
_WORDING: Final[Mapping[RecommendationKind, _Wordsmith]] = {
    "cheaper_model": _cheaper_model,
    "prompt_caching": _prompt_caching,
    "batch_api": _batch_api,
    "trim_outputs": _trim_outputs,
    "response_cache": _response_cache,
    "failed_calls": _failed_calls,
    "deprecated_model": _deprecated_model,
}
