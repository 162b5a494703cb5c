"""The optimization agent's computation: priced, ranked recommendations over daily rollups.

``recommend`` applies the detection rules and savings formulas of ``shared.usage.savings``
to the period's ``usage_daily`` rollups and words each finding as a ``Recommendation``: a
specific title, a sentence showing the numbers behind the saving, the saving per 30-day
month, its basis and a confidence, the evidence, and the steps to take. Savings are
computed, never guessed; the wording only quotes numbers that are in the evidence or the
saving itself, and says which basis the saving has: "saves $X/month" for a measured one,
"would save up to $X/month" for an upper bound, whose assumption the text states.

The confidence follows from the basis: a measured saving starts from its kind's
``BASE_CONFIDENCE`` (0.5 to 0.9: how likely acting on it saves about that without hurting the
feature); an upper bound's is capped at ``UPPER_BOUND_MAX_CONFIDENCE`` (0.4), below every
measured kind's, so an upper bound never reads as sure as a measurement. Both are lowered
when few calls back the extrapolation. Pure: no I/O, no clock (the period says which prices
apply).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Final

from shared.model_tiers import model_tiers
from shared.models.findings import (
    UPPER_BOUND_MAX_CONFIDENCE,
    Basis,
    EvidenceValue,
    ModelTarget,
    OptimizationReport,
    Recommendation,
)
from shared.models.period import PeriodRange, day_start
from shared.models.recommendations import RecommendationKind
from shared.price_book import PriceBook
from shared.usage.report import days_of
from shared.usage.rollups import DailyRollup
from shared.usage.savings import (
    CACHE_TTL_MINUTES,
    CACHEABLE_PREFIX_MIN_TOKENS,
    ERROR_SHARE,
    SCHEDULE_CALL_SHARE,
    WARM_CALLS_PER_HOUR,
    Inefficiency,
    cents,
    find_inefficiencies,
    monthly_usd,
)

# How sure each kind of saving is, before data volume: the chance that acting on it saves
# about what it says without hurting the feature. These are for measured savings; an upper
# bound's confidence is capped at UPPER_BOUND_MAX_CONFIDENCE (below all of these), since it
# assumes what the records cannot show.
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
    # Measured from prefix hashes: the calls that would find the cache warm are counted; the
    # prefix is taken as the shortest repeated call's input.
    "prompt_caching": 0.7,
    # The tokens are measured and repriced; whether the smaller model answers as well is
    # not (and another family may count the same text in other token numbers).
    "cheaper_model": 0.6,
    # The long tail may be answers the users need; the cap changes what they get.
    "trim_outputs": 0.5,
}
# A batch finding from the calls' schedule rather than the absence of an end user: someone
# may still be waiting for a scheduled job's results (a morning report).
SCHEDULE_CONFIDENCE: Final = 0.7
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
    rows: Iterable[DailyRollup],
    period: PeriodRange,
    *,
    min_monthly_savings_usd: float = 0.0,
    book: PriceBook = PriceBook.LIST,
) -> OptimizationReport:
    """Ranked recommendations for the period's rollups (rows outside the period are ignored).

    Prices are ``book``'s (the workspace's) at 00:00 UTC of the period's last day; savings
    are extrapolated from the period's daily average to a 30-day month. Recommendations
    saving less than ``min_monthly_savings_usd`` a month, or nothing once rounded to the
    cent, are dropped; the rest are ranked by monthly saving, largest first.
    """
    days = days_of(period)
    wanted = set(days)
    scan = find_inefficiencies(
        [row for row in rows if row.day in wanted],
        days=len(days),
        price_at=day_start(date.fromisoformat(days[-1])),
        book=book,
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


def confidence(
    kind: RecommendationKind, requests: int, basis: Basis = "measured", signal: str = ""
) -> float:
    """How sure the saving is: ``BASE_CONFIDENCE`` of the kind (``SCHEDULE_CONFIDENCE`` for
    a batch finding from a schedule), capped at ``UPPER_BOUND_MAX_CONFIDENCE`` for an upper
    bound, and lowered when few calls back the extrapolation."""
    base = SCHEDULE_CONFIDENCE if signal == "schedule" else BASE_CONFIDENCE[kind]
    if basis == "upper_bound":
        base = min(base, UPPER_BOUND_MAX_CONFIDENCE)
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
        confidence=confidence(
            item.kind,
            int(evidence.get("requests", 0)),
            item.basis,
            str(evidence.get("signal", "")),
        ),
        basis=item.basis,
        evidence=evidence,
        steps=wording.steps,
        provider=item.provider,
        model=item.model,
        feature=item.feature,
        target_model=item.target_model,
        targets=[
            ModelTarget(
                model=target.model,
                tier=target.tier,
                monthly_savings_usd=cents(monthly_usd(target.period_savings_usd, days)),
                input_usd_per_mtok=float(target.prices.input_mtok),
                cached_input_usd_per_mtok=float(target.prices.cached_input_mtok),
                output_usd_per_mtok=float(target.prices.output_mtok),
                period_cost_usd=cents(target.period_cost_usd),
            )
            for target in item.targets
        ],
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


def _claim(item: Inefficiency, monthly: float) -> str:
    """The saving as the basis allows it to be stated."""
    if item.basis == "measured":
        return f"saves {_per_month(monthly)}"
    return f"would save up to {_per_month(monthly)}"


def _switch_prices(e: Mapping[str, EvidenceValue], prefix: str) -> str:
    return f"{_price(e[prefix + 'input_usd_per_mtok'])}/{_price(e[prefix + 'output_usd_per_mtok'])}"


def _switch_detail(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> str:
    cached = int(e["cached_input_tokens"])
    cached_note = f" ({_n(cached)} of them cached)" if cached else ""
    return (
        f"Over {e['days']} days its {_n(e['input_tokens'])} input{cached_note} and "
        f"{_n(e['output_tokens'])} output tokens cost {_usd(e['period_cost_usd'])} at "
        f"{item.model}'s "
        f"{_switch_prices(e, '')} per million input/output tokens; the same tokens would cost "
        f"{_usd(e['target_period_cost_usd'])} at {item.target_model}'s "
        f"{_switch_prices(e, 'target_')}: moving {_claim(item, monthly)}."
    )


def _family_note(item: Inefficiency) -> str:
    """Another family may tokenize the same text differently: said, not hidden."""
    tiers = model_tiers()
    source = tiers.family(item.provider, item.model)
    others = {tiers.family(item.provider, target.model) for target in item.targets}
    if source is not None and others == {source}:
        return ""
    return (
        " Another model family may count the same text in more or fewer tokens; the saving "
        "is the measured tokens at its prices."
    )


_SIGNALS: Final[Mapping[str, str]] = {
    "short_outputs": (
        "short, classification-like answers (at most 64 tokens on average), which a "
        "small-tier model usually gets right"
    ),
    "long_inputs_short_outputs": (
        "long inputs read for short answers (extraction-like), which a medium-tier model "
        "usually handles"
    ),
}


def _cheaper_model(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope, target = _scope(item), item.target_model
    errors = ""
    if float(e["error_share"]) >= ERROR_SHARE:
        errors = (
            f" {_share(e['error_share'])} of its calls failed, so the proposal stays at the "
            f"{e['wanted_tier']} tier rather than the smallest."
        )
    second = ""
    if "second_target_model" in e:
        runner_up = item.targets[1]
        second = (
            f" Second choice: {e['second_target_model']} at "
            f"{_switch_prices(e, 'second_target_')}, "
            f"{_usd(e['second_target_period_cost_usd'])} for the period "
            f"({_per_month(cents(monthly_usd(runner_up.period_savings_usd, int(e['days']))))} "
            "less)."
        )
    return _Wording(
        title=f"Move {scope} from {item.model} to {target}",
        detail=(
            f"{_n(e['requests'])} calls of {scope} averaged {_n(e['mean_input_tokens'])} input "
            f"and {_n(e['mean_output_tokens'])} output tokens: "
            f"{_SIGNALS[str(e['signal'])]}.{errors} {_switch_detail(item, e, monthly)}"
            f"{second}{_family_note(item)}"
        ),
        steps=[
            f"Replay a sample of {scope}'s requests on {target} and compare the answers",
            f"Switch {scope} to {target} if they hold up",
            "Watch its error rate, answer quality and token counts for a week after the switch",
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


# How the text names the providers whose caching it describes.
_PROVIDER_NAMES: Final[Mapping[str, str]] = {
    "openai": "OpenAI",
    "azure": "Azure OpenAI",
    "anthropic": "Anthropic",
    "aws": "Bedrock",
    "google": "Vertex AI",
}


def _cache_prices(e: Mapping[str, EvidenceValue]) -> str:
    return (
        f"{_price(e['cached_input_usd_per_mtok'])} instead of "
        f"{_price(e['input_usd_per_mtok'])} per million"
    )


def _writes(e: Mapping[str, EvidenceValue]) -> str:
    return (
        f"the {_n(e['cold_requests'])} other calls would write it at "
        f"{_price(e['cache_write_usd_per_mtok'])} per million (the cache-write premium)"
    )


def _prompt_caching(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope, mode, prefix = _scope(item), str(e["mode"]), _n(e["prefix_tokens"])
    claim = _claim(item, monthly)
    if item.basis == "measured":
        return _Wording(
            title=f"Cache the repeated prompt prefix of {scope} on {item.model}",
            detail=(
                f"{_n(e['warm_requests'])} of the {_n(e['prefix_hashed_requests'])} calls of "
                f"{scope} that sent a prompt prefix hash repeated a prefix seen within the "
                f"previous {CACHE_TTL_MINUTES} minutes, while the cache would still hold it; "
                f"the shortest of them sent {prefix} input tokens, taken as the prefix. Read "
                f"from the cache those tokens cost {_cache_prices(e)}, and {_writes(e)}: "
                f"{claim}."
            ),
            steps=[
                "Mark the end of the shared prefix with a cache breakpoint (cache_control)",
                "Keep the prefix byte-for-byte identical between calls",
                "Check that cached input tokens appear in the usage records",
            ],
        )
    assumption = (
        f"The records do not show whether the calls share a prefix: if their first {prefix} "
        "tokens (the shortest call's input) were the same, "
    )
    measure = "Send prompt_prefix_hash with each usage record, so Apex can measure the repeats"
    if mode == "gemini":
        return _gemini_caching(item, e, claim, assumption, measure)
    warm = (
        f"the {_n(e['warm_requests'])} calls made in hours with at least "
        f"{WARM_CALLS_PER_HOUR} calls (one per {CACHE_TTL_MINUTES} minutes, if spread evenly) "
        "would find it cached"
    )
    if mode == "automatic":
        return _Wording(
            title=f"Reorder the prompts of {scope} on {item.model} so they start the same",
            detail=(
                f"{_PROVIDER_NAMES.get(item.provider, item.provider)} caches prompts of "
                f"{CACHEABLE_PREFIX_MIN_TOKENS:,} tokens or more by itself, yet none of the "
                f"{_n(e['requests'])} calls of {scope} read a cached token although each sent "
                f"at least {prefix} input tokens: their prompts do not "
                f"start with the same text. {assumption}{warm} at {_cache_prices(e)}: {claim}."
            ),
            steps=[
                "Put the fixed instructions and reference text first, the per-request text last",
                "Keep ids, dates and other changing values out of the start of the prompt",
                measure,
            ],
        )
    return _Wording(
        title=f"Cache a shared prompt prefix of {scope} on {item.model}",
        detail=(
            f"None of the {_n(e['requests'])} calls of {scope} read from the prompt cache, and "
            f"each sent at least {prefix} input tokens. "
            f"{_PROVIDER_NAMES.get(item.provider, item.provider)} caches only what the "
            f"prompt marks, for {CACHE_TTL_MINUTES} minutes. {assumption}{warm} at "
            f"{_cache_prices(e)}, and {_writes(e)}: {claim}."
        ),
        steps=[
            "Put the fixed instructions and reference text first, then a cache breakpoint "
            "(cache_control)",
            measure,
            "Check that cached input tokens appear in the usage records",
        ],
    )


def _gemini_caching(
    item: Inefficiency, e: Mapping[str, EvidenceValue], claim: str, assumption: str, measure: str
) -> _Wording:
    scope, prefix = _scope(item), _n(e["prefix_tokens"])
    return _Wording(
        title=f"Cache the shared prompt prefix of {scope} on {item.model}",
        detail=(
            f"None of the {_n(e['requests'])} calls of {scope} read from the cache although "
            f"each sent at least {prefix} input tokens (Gemini caches repeated prefixes "
            f"implicitly). {assumption}an explicit context cache kept during the "
            f"{_n(e['cached_hours'])} hours busy enough to pay for it (storage "
            f"{_price(e['storage_usd_per_mtok_hour'])} per million tokens per hour, from "
            f"Google's price list; one creation each hour at the input price) would let "
            f"{_n(e['cached_requests'])} calls read it at {_cache_prices(e)}: {claim}."
        ),
        steps=[
            "Put the fixed instructions and reference text first in the prompt",
            "Create an explicit context cache for them during busy hours",
            measure,
        ],
    )


def _batch_api(item: Inefficiency, e: Mapping[str, EvidenceValue], monthly: float) -> _Wording:
    scope = _scope(item)
    if e["signal"] == "schedule":
        start = int(e["window_start_hour"])
        end = (start + int(e["window_hours"])) % 24
        why = (
            f"{_n(e['window_requests'])} of the {_n(e['requests'])} calls of {scope} "
            f"({_share(e['window_share'])}) ran between {start:02d}:00 and {end:02d}:00 UTC, "
            f"and on {_n(e['days_on_schedule'])} of its {_n(e['active_days'])} days with calls "
            f"at least {SCHEDULE_CALL_SHARE:.0%} of them did: a scheduled job, although its "
            f"calls name end users. Its {_n(e['candidate_requests'])} calls not already batched"
        )
    else:
        why = (
            f"{_n(e['non_interactive_requests'])} of the {_n(e['requests'])} calls of {scope} "
            f"({_share(e['non_interactive_share'])}) had no end user waiting; those calls"
        )
    return _Wording(
        title=f"Send {scope} on {item.model} through the batch API",
        detail=(
            f"{why} used {_n(e['candidate_input_tokens'])} input and "
            f"{_n(e['candidate_output_tokens'])} output tokens, at "
            f"{_switch_prices(e, '')} per million input/output tokens at standard prices and "
            f"{_switch_prices(e, 'batch_')} through the batch API (results within 24 hours): "
            f"{_claim(item, monthly)}."
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
            f"Half of the {_n(e['requests'])} calls of {scope} return about "
            f"{_n(e['output_p50'])} output tokens or fewer, but one in twenty returns about "
            f"{_n(e['output_p95'])} or more (from a sketch accurate to 1%). A cap of {cap} "
            f"tokens would cut at least {_n(e['excess_output_tokens'])} of its "
            f"{_n(e['output_tokens'])} output tokens, at {_price(e['output_usd_per_mtok'])} "
            f"per million: {_claim(item, monthly)}."
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
            f"({_share(e['repeat_share'])}) repeated a request (the same request hash) seen in "
            f"the previous {e['window_hours']} hours, and cost {_usd(e['repeat_cost_usd'])}; a "
            f"response cache would have answered them: {_claim(item, monthly)}."
        ),
        steps=[
            "Key a response cache on the request hash",
            f"Serve repeats from it for up to {e['window_hours']} hours",
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
            f"({_usd(e['error_cost_usd'])}) for nothing; avoiding them {_claim(item, monthly)}."
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
