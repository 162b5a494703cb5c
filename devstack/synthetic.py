"""Deterministic synthetic usage for a workspace, with planted inefficiencies of known worth.

``generate(days=30, end=date(...), seed=7)`` returns plain-form usage records (DESIGN §5)
for the ``days`` UTC days ending with ``end``, their normalized ``UsageRecord``s, and a
``Manifest`` of what was planted: inefficiencies of every ``RecommendationKind``, each with
its monthly savings and the basis it must be reported with, plus one spend anomaly. Besides
one plant of each kind, the cases of issue 14: a premium Anthropic classifier (its target is
the small tier, across families), an OpenAI feature whose long prompts are never cached (an
unstable prefix: an upper bound), an Anthropic feature whose records carry prompt prefix
hashes (caching measured), a scheduled nightly job whose calls carry user ids (batch), and
requests repeated the next day within 24 hours (a rolling window, not the calendar day).
Healthy background traffic triggers none of the detection rules. The same seed and arguments
always give the same records.

The detection rules and savings formulas are those of the optimization agent,
``shared.usage.savings`` (documented there), and the anomaly rule is
``shared.usage.anomalies``: the manifest is what they find in the generated records' rollups,
so a test of the agent against the manifest checks it against its own documented contract,
and ``tests/unit/test_synthetic.py`` recomputes each saving straight from the records.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Final, Literal, NamedTuple

from shared.models.findings import Basis
from shared.models.recommendations import RecommendationKind
from shared.models.usage import UsageRecord, parse_usage_record
from shared.price_book import PriceBook
from shared.usage import anomalies, savings
from shared.usage.anomalies import ROLLING_WINDOW_DAYS
from shared.usage.rollups import DailyRollup, accumulate

DEFAULT_SEED: Final = 7
MIN_DAYS: Final = ROLLING_WINDOW_DAYS + 1  # the anomaly needs a 7-day rolling median before it


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
    basis: Basis
    # Every model proposed, best first, with its monthly savings (unrounded).
    targets: tuple[tuple[str, float], ...] = ()


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
        """The first plant of the kind (the one every kind has)."""
        return next(item for item in self.inefficiencies if item.kind == kind)

    def by_feature(self, feature: str) -> PlantedInefficiency:
        return next(item for item in self.inefficiencies if item.feature == feature)

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


# --- the rules, as the manifest records them -----------------------------------------------


def find_inefficiencies(
    rollups: Iterable[DailyRollup],
    *,
    days: int,
    price_at: datetime,
    book: PriceBook = PriceBook.LIST,
) -> list[PlantedInefficiency]:
    """``savings.find_inefficiencies``, as manifest entries (unknown models: none planted).

    The synthetic workspace sets no prices of its own: list prices unless ``book`` says."""
    scan = savings.find_inefficiencies(rollups, days=days, price_at=price_at, book=book)
    return [
        PlantedInefficiency(
            kind=item.kind,
            provider=item.provider,
            model=item.model,
            feature=item.feature or "",
            monthly_savings_usd=item.monthly_savings_usd,
            target_model=item.target_model,
            evidence=dict(item.evidence),
            basis=item.basis,
            targets=tuple(
                (t.model, savings.monthly(t.period_savings_usd, days)) for t in item.targets
            ),
        )
        for item in scan.inefficiencies
    ]


def find_anomalies(rollups: Iterable[DailyRollup]) -> list[PlantedAnomaly]:
    """``anomalies.find_anomalies`` over every day with rows, as manifest entries."""
    return [
        PlantedAnomaly(
            day=found.day,
            provider=found.driver.provider,
            model=found.driver.model,
            feature=found.driver.feature or "",
            day_cost_usd=found.cost_nanousd / 1e9,
            rolling_median_usd=found.rolling_median_nanousd / 1e9,
        )
        for found in anomalies.find_anomalies(rollups)
    ]


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
    prompt_prefix_hash: str | None = None


@dataclass(frozen=True, slots=True)
class _Feature:
    name: str
    provider: str
    model: str
    per_day: int
    call: Callable[[random.Random], _Call]
    hours: tuple[int, int] = (7, 22)  # UTC hours the feature runs in
    plants: RecommendationKind | None = None
    # The basis the plant's saving must be reported with.
    basis: Basis = "measured"
    # Each call is asked again after midnight (see ``_midnight_pairs``).
    midnight_pairs: bool = False


_USERS: Final = tuple(f"user-{n:02d}@example.com" for n in range(1, 25))
_FAQ_QUESTIONS: Final = 15


def _user(rng: random.Random) -> str:
    return rng.choice(_USERS)


def _classify(rng: random.Random) -> _Call:
    # A label of a few tokens out of an expensive model.
    return _Call(rng.randint(300, 700), rng.randint(3, 12), rng.uniform(350, 900), _user(rng))


def _route(rng: random.Random) -> _Call:
    # A premium Anthropic model picking one of a few queues for an email: a handful of tokens.
    return _Call(rng.randint(400, 800), rng.randint(2, 10), rng.uniform(800, 2000), _user(rng))


def _contract(rng: random.Random) -> _Call:
    # A 1,800-token clause library, but each prompt starts with the document's own header
    # (OpenAI would cache a stable 1,024+-token start by itself): no call reads the cache.
    prompt = 1800 + rng.randint(0, 500)
    return _Call(prompt, rng.randint(250, 450), rng.uniform(2500, 6000), _user(rng))


def _support(rng: random.Random) -> _Call:
    # A 2,100-token system prompt and tool list first (its hash sent with every record),
    # the conversation after; no cache markers, so nothing is read from the cache.
    return _Call(
        2100 + rng.randint(50, 600),
        rng.randint(270, 400),
        rng.uniform(1500, 4000),
        _user(rng),
        prompt_prefix_hash="support-agent-v3",
    )


def _report(rng: random.Random) -> _Call:
    # Each user's nightly report, generated by a scheduled job: nobody waits for it.
    return _Call(rng.randint(400, 900), rng.randint(300, 600), rng.uniform(3000, 7000), _user(rng))


def _kb_lookup(rng: random.Random) -> _Call:
    # A user looks something up in the knowledge base, and looks it up again the next day
    # (``_midnight_pairs`` sets the hashes and the second call).
    return _Call(rng.randint(500, 900), rng.randint(150, 300), rng.uniform(800, 2000), _user(rng))


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


# One plant of each kind, and healthy background traffic.
_FEATURES: Final = (
    _Feature("classify_ticket", "openai", "gpt-4o", 40, _classify, plants="cheaper_model"),
    _Feature(
        "contract_review",
        "openai",
        "gpt-4.1",
        60,
        _contract,
        hours=(9, 13),
        plants="prompt_caching",
        basis="upper_bound",
    ),
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
# Issue 14's other cases, a second plant of four kinds (``generate(all_cases=True)``).
_ISSUE_14_FEATURES: Final = (
    _Feature("route_email", "anthropic", "claude-opus-4-1", 40, _route, plants="cheaper_model"),
    _Feature(
        "support_agent",
        "anthropic",
        "claude-sonnet-4-6",
        150,
        _support,
        hours=(8, 20),
        plants="prompt_caching",
    ),
    _Feature("nightly_report", "openai", "gpt-4.1", 40, _report, hours=(1, 3), plants="batch_api"),
    _Feature(
        "kb_lookup",
        "openai",
        "gpt-4o-mini",
        30,
        _kb_lookup,
        plants="response_cache",
        midnight_pairs=True,
    ),
)
# One day, an agent loop on a feature that does not otherwise run drives spend far up.
_ANOMALY: Final = _Feature("research_agent", "anthropic", "claude-sonnet-4-6", 250, _research)
# The calls it takes to stand out (3x the median) over the larger spend of all the cases.
_ANOMALY_ALL_CASES_PER_DAY: Final = 450
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
        if call.prompt_prefix_hash is not None:
            raw["prompt_prefix_hash"] = call.prompt_prefix_hash
        yield raw


def _midnight_pairs(
    feature: _Feature, day: date, count: int, rng: random.Random, seed: int, last: date
) -> Iterable[dict[str, Any]]:
    """``count`` questions asked on ``day`` (in the feature's hours), each asked again by the
    same user (the same request hash) the next day, earlier in the day than the first time,
    unless that is past ``last``: never twice on one calendar day, always within 24 hours."""
    midnight = datetime.combine(day + timedelta(days=1), time(tzinfo=UTC))
    for raw in _calls(feature, day, count, rng, seed):
        first = {**raw, "request_hash": f"{feature.name}-{day.isoformat()}-{raw['id'][-5:]}"}
        yield first
        if day == last:
            continue
        ts = datetime.strptime(raw["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        before_24h = int((ts + timedelta(days=1) - midnight).total_seconds()) - 60
        again = midnight + timedelta(seconds=rng.randint(0, before_24h))
        yield {**first, "id": f"{raw['id']}-again", "ts": again.strftime("%Y-%m-%dT%H:%M:%SZ")}


def generate(
    *,
    end: date,
    days: int = 30,
    seed: int = DEFAULT_SEED,
    scale: int = 1,
    all_cases: bool = False,
) -> SyntheticWorkspace:
    """Synthetic usage for the ``days`` UTC days ending with ``end`` (inclusive).

    ``scale`` multiplies every feature's daily call count (the default, about 350 calls a
    day, keeps a 30-day workspace to ~10,000 records). ``days`` must be at least
    ``MIN_DAYS``. ``all_cases`` adds issue 14's other cases (``_ISSUE_14_FEATURES``: a
    premium Anthropic classifier, Anthropic caching measured by prefix hashes, a scheduled
    job with user ids, repeats the next day), a second plant of four kinds; without it the
    workspace has one plant of each kind (the demo's, and the triage scoring's).
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
    features = _FEATURES + _ISSUE_14_FEATURES if all_cases else _FEATURES
    raw: list[dict[str, Any]] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        for feature in features:
            # +-20% day-to-day variation keeps the series realistic but the median stable.
            count = round(feature.per_day * scale * rng.uniform(0.8, 1.2))
            if feature.midnight_pairs:
                raw.extend(_midnight_pairs(feature, day, count, rng, seed, end))
            else:
                raw.extend(_calls(feature, day, count, rng, seed))
        if day == anomaly_day:
            per_day = _ANOMALY_ALL_CASES_PER_DAY if all_cases else _ANOMALY.per_day
            raw.extend(_calls(_ANOMALY, day, per_day * scale, rng, seed))
    # In time order, as a client exports them (the repeat windows are exact in any order
    # only for calls clustered within a window: shared.usage.repeats).
    raw.sort(key=lambda item: (item["ts"], item["id"]))
    now = datetime.combine(end + timedelta(days=1), time(tzinfo=UTC))
    records = [parse_usage_record(item, now=now) for item in raw]
    manifest = _manifest(records, start, end, features)
    return SyntheticWorkspace(raw=raw, records=records, manifest=manifest)


def _manifest(
    records: Sequence[UsageRecord], start: date, end: date, features: Sequence[_Feature]
) -> Manifest:
    days = (end - start).days + 1
    price_at = datetime.combine(end, time(tzinfo=UTC))
    rollups = list(accumulate(records).daily.values())
    found = {
        (item.kind, item.feature): item
        for item in find_inefficiencies(rollups, days=days, price_at=price_at)
    }
    expected = [(f.plants, f.name) for f in features if f.plants is not None]
    missing = [pair for pair in expected if pair not in found]
    if missing:
        # E.g. a period before the table has OpenAI batch prices (2026-10-14).
        raise RuntimeError(
            f"planted inefficiencies not detectable at {price_at:%Y-%m-%d}: {missing}"
        )
    mislabelled = [
        (f.plants, f.name, found[(f.plants, f.name)].basis)
        for f in features
        if f.plants is not None and found[(f.plants, f.name)].basis != f.basis
    ]
    if mislabelled:
        raise RuntimeError(f"planted inefficiencies found with the wrong basis: {mislabelled}")
    planted = tuple(found[pair] for pair in expected)
    return Manifest(
        start_day=start.isoformat(),
        end_day=end.isoformat(),
        days=days,
        price_at=price_at,
        inefficiencies=planted,
        anomaly=_anomaly(rollups),
    )


def _anomaly(rollups: Sequence[DailyRollup]) -> PlantedAnomaly:
    found = find_anomalies(rollups)
    if len(found) != 1:
        raise RuntimeError(f"expected exactly the planted anomaly, found {len(found)}")
    return found[0]
