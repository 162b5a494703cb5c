"""Issue 14's four wrong answers, each on data shaped like a real team's: what the previous
rules answered (stated in each test, and reproduced where the old selection still exists),
and the answer the rules give now. Records go through the real rollups (``accumulate``), as
ingest folds them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from typing import Any

import pytest

from shared import pricing
from shared.models.findings import UPPER_BOUND_MAX_CONFIDENCE, OptimizationReport, Recommendation
from shared.models.period import AbsolutePeriod
from shared.models.usage import UsageRecord, usage_record
from shared.price_book import PriceBook, PriceEntry
from shared.usage.recommend import recommend
from shared.usage.rollups import DailyRollup, accumulate
from tests.unit.test_recommend import recomputed, to_the_cent

FIRST, LAST = date(2026, 11, 7), date(2026, 11, 20)
PERIOD = AbsolutePeriod(start=FIRST.isoformat(), end=LAST.isoformat()).resolve()
AT = datetime(2026, 11, 20, tzinfo=UTC)
DAYS = (LAST - FIRST).days + 1
USERS = tuple(f"agent-{n:03d}@support.example" for n in range(40))


def days() -> Iterator[date]:
    for offset in range(DAYS):
        yield FIRST + timedelta(days=offset)


def at(day: date, seconds: float) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)


def record(ts: datetime, model: str, provider: str, feature: str, **fields: Any) -> UsageRecord:
    return usage_record(ts=ts, model=model, provider=provider, feature=feature, **fields)


def rollups(records: list[UsageRecord]) -> list[DailyRollup]:
    records.sort(key=lambda r: r.ts)  # exported in time order
    return list(accumulate(records).daily.values())


def only(report: OptimizationReport, kind: str, feature: str) -> Recommendation:
    (found,) = [r for r in report.recommendations if r.kind == kind and r.feature == feature]
    return found


def kinds(report: OptimizationReport, feature: str) -> set[str]:
    return {r.kind for r in report.recommendations if r.feature == feature}


# --- 1. A classifier on a premium Anthropic model --------------------------------------------


def triage_records(rng: random.Random) -> list[UsageRecord]:
    """Ticket triage on Claude Opus 4.1, weekday business hours: the ticket and a page of
    instructions in, one label of a few tokens out."""
    found = []
    for day in days():
        if day.weekday() >= 5:
            continue
        for _ in range(rng.randint(90, 150)):
            found.append(
                record(
                    at(day, rng.uniform(8 * 3600, 18 * 3600)),
                    "claude-opus-4-1",
                    "anthropic",
                    "ticket_triage",
                    input_tokens=rng.randint(350, 1200),
                    output_tokens=rng.randint(1, 15),
                    latency_ms=rng.uniform(600, 2500),
                    user=rng.choice(USERS),
                )
            )
    return found


def test_a_premium_anthropic_classifier_gets_the_small_tier() -> None:
    rows = rollups(triage_records(random.Random(1)))
    rec = only(recommend(rows, PERIOD), "cheaper_model", "ticket_triage")
    # The old rule searched the model's own family: the next Opus, two thirds saved.
    old = pricing.cheaper_models("anthropic", "claude-opus-4-1", AT)[0]
    assert old.model == "claude-opus-4-5"
    current = pricing.model_prices("anthropic", "claude-opus-4-1", AT)
    tokens = (
        sum(r.input_tokens for r in rows),
        sum(r.cached_input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
    )
    spent = current.cost(*tokens)
    assert float((spent - old.cost(*tokens)) / spent) == pytest.approx(2 / 3, abs=0.01)
    # Now: the small tier, Haiku, over 90% saved, and no Opus among the targets.
    assert rec.target_model is not None
    assert rec.target_model.startswith("claude-haiku")
    assert [t.tier for t in rec.targets] == ["small", "small"]
    assert not any("opus" in t.model for t in rec.targets)
    first = pricing.model_prices("anthropic", rec.target_model, AT)
    assert (spent - first.cost(*tokens)) / spent > Decimal("0.9")
    assert rec.basis == "measured"
    assert "classification-like" in rec.detail


def test_allowed_models_and_the_workspaces_prices_choose_and_price_the_target() -> None:
    rows = rollups(triage_records(random.Random(1)))
    # The workspace allows only Sonnet 4.6 and Haiku 4.5, and pays 20% less for Haiku 4.5.
    book = PriceBook.of(
        [PriceEntry("anthropic", "claude-haiku-4-5", discount_pct=Decimal(20))],
        allowed_models=[("anthropic", "claude-sonnet-4-6"), ("anthropic", "claude-haiku-4-5")],
    )
    rec = only(recommend(rows, PERIOD, book=book), "cheaper_model", "ticket_triage")
    assert [t.model for t in rec.targets] == ["claude-haiku-4-5"]
    assert rec.targets[0].input_usd_per_mtok == pytest.approx(0.8)
    assert rec.targets[0].output_usd_per_mtok == pytest.approx(4.0)
    # Nothing allowed in the wanted tier: no cheaper-model recommendation at all.
    none = PriceBook.of(allowed_models=[("anthropic", "claude-sonnet-4-6")])
    assert "cheaper_model" not in kinds(recommend(rows, PERIOD, book=none), "ticket_triage")


# --- 2. Prompt caching, provider by provider -------------------------------------------------


def rag_records(rng: random.Random) -> list[UsageRecord]:
    """A question-answering feature on GPT-4.1: retrieved passages in front of the question,
    3,000-5,000 tokens per prompt, 30-60 calls an hour in business hours; OpenAI would cache
    a stable 1,024+-token start by itself, and never did."""
    found = []
    for day in days():
        for hour in range(8, 18):
            for _ in range(rng.randint(30, 60)):
                found.append(
                    record(
                        at(day, hour * 3600 + rng.uniform(0, 3600)),
                        "gpt-4.1",
                        "openai",
                        "docs_qa",
                        input_tokens=rng.randint(3000, 5000),
                        output_tokens=rng.randint(200, 500),
                        user=rng.choice(USERS),
                    )
                )
    return found


def test_openai_long_prompts_never_cached_mean_an_unstable_prefix() -> None:
    rows = rollups(rag_records(random.Random(2)))
    rec = only(recommend(rows, PERIOD), "prompt_caching", "docs_qa")
    # The old answer: "Cache the shared prompt prefix ...", stating as fact that "N of its N
    # input tokens repeat a prefix", with the confidence of a measured saving (0.65).
    assert "repeat a prefix" not in rec.detail
    assert rec.title == "Reorder the prompts of feature `docs_qa` on gpt-4.1 so they start the same"
    assert rec.basis == "upper_bound"
    assert rec.confidence <= UPPER_BOUND_MAX_CONFIDENCE
    assert "OpenAI caches prompts of 1,024 tokens or more by itself" in rec.detail
    assert "do not show whether the calls share a prefix" in rec.detail
    assert f"would save up to ${rec.monthly_savings_usd:,.2f}/month" in rec.detail
    assert rec.evidence["mode"] == "automatic"


def drafting_records(rng: random.Random, *, hashed: bool, per_hour: tuple[int, int]) -> list[Any]:
    """Contract drafting on Claude Sonnet 4.6: a 2,600-token system prompt and clause
    library first, then the request."""
    found = []
    for day in days():
        for hour in range(9, 18):
            for _ in range(rng.randint(*per_hour)):
                fields: dict[str, Any] = {
                    "input_tokens": 2600 + rng.randint(100, 900),
                    "output_tokens": rng.randint(300, 900),
                    "user": rng.choice(USERS),
                }
                if hashed:
                    fields["prompt_prefix_hash"] = "drafting-system-v12"
                found.append(
                    record(
                        at(day, hour * 3600 + rng.uniform(0, 3600)),
                        "claude-sonnet-4-6",
                        "anthropic",
                        "drafting",
                        **fields,
                    )
                )
    return found


def test_anthropic_calls_too_far_apart_for_the_cache_get_no_caching_advice() -> None:
    # One or two calls an hour: a 5-minute cache has expired before the next call, and
    # every call would pay the cache-write premium.
    records = drafting_records(random.Random(3), hashed=False, per_hour=(1, 2))
    rows = rollups(records)
    # The old rule priced every call reading its shortest input from the cache, less one
    # write a day: a positive saving, so it recommended caching.
    prices = pricing.model_prices("anthropic", "claude-sonnet-4-6", AT)
    assert prices.cache_write_mtok is not None
    old = sum(
        r.requests * r.min_input_tokens * (prices.input_mtok - prices.cached_input_mtok)
        - r.min_input_tokens * (prices.cache_write_mtok - prices.input_mtok)
        for r in rows
    )
    assert old > 0
    assert "prompt_caching" not in kinds(recommend(rows, PERIOD), "drafting")


def test_anthropic_caching_without_hashes_is_an_upper_bound_with_the_write_premium() -> None:
    rows = rollups(drafting_records(random.Random(4), hashed=False, per_hour=(20, 30)))
    rec = only(recommend(rows, PERIOD), "prompt_caching", "drafting")
    assert rec.basis == "upper_bound"
    assert rec.evidence["mode"] == "explicit"
    assert rec.evidence["cache_write_usd_per_mtok"] == 3.75
    assert "cache-write premium" in rec.detail
    assert "would save up to" in rec.detail


def test_anthropic_caching_with_prefix_hashes_is_measured() -> None:
    records = drafting_records(random.Random(5), hashed=True, per_hour=(20, 30))
    rows = rollups(list(records))
    rec = only(recommend(rows, PERIOD), "prompt_caching", "drafting")
    assert rec.basis == "measured"
    assert rec.confidence > UPPER_BOUND_MAX_CONFIDENCE
    # The warm calls are those with the same prefix hash less than 5 minutes before.
    ordered = sorted(records, key=lambda r: r.ts)
    warm = sum(1 for a, b in pairwise(ordered) if (b.ts - a.ts).total_seconds() < 300)
    assert rec.evidence["warm_requests"] == pytest.approx(warm, rel=0.01)
    assert int(rec.evidence["warm_requests"]) + int(rec.evidence["cold_requests"]) == len(records)
    assert f"saves ${rec.monthly_savings_usd:,.2f}/month" in rec.detail


# --- 3. A scheduled job whose calls carry user ids -------------------------------------------


def digest_records(rng: random.Random) -> list[UsageRecord]:
    """Each user's morning digest, generated by a cron job from 02:00 UTC; every call names
    the user it is for."""
    found = []
    for day in days():
        for user in USERS:
            found.append(
                record(
                    at(day, 2 * 3600 + rng.uniform(0, 5400)),
                    "gpt-4o",
                    "openai",
                    "morning_digest",
                    input_tokens=rng.randint(1500, 4000),
                    output_tokens=rng.randint(300, 700),
                    user=user,
                )
            )
    return found


def test_a_scheduled_job_with_user_ids_is_sent_to_the_batch_api() -> None:
    records = digest_records(random.Random(6))
    rows = rollups(records)
    # The old rule's only test of "non-interactive" was the absence of an end user.
    assert sum(r.no_user_requests for r in rows) == 0
    rec = only(recommend(rows, PERIOD), "batch_api", "morning_digest")
    assert rec.evidence["signal"] == "schedule"
    assert rec.evidence["days_on_schedule"] == rec.evidence["active_days"] == DAYS
    standard = pricing.model_prices("openai", "gpt-4o", AT)
    batch = pricing.model_prices("openai", "gpt-4o", AT, batch=True)
    saved = sum(
        standard.cost(r.input_tokens, 0, r.output_tokens)
        - batch.cost(r.input_tokens, 0, r.output_tokens)
        for r in records
    )
    assert rec.monthly_savings_usd == round(float(saved / DAYS * 30), 2)
    assert "between 02:00 and 05:00 UTC" in rec.detail


def test_interactive_business_hours_are_not_a_schedule() -> None:
    rows = rollups(rag_records(random.Random(7)))
    assert "batch_api" not in kinds(recommend(rows, PERIOD), "docs_qa")


# --- 4. Repeats across midnight ----------------------------------------------------------------


def helpdesk_records(rng: random.Random) -> list[UsageRecord]:
    """A night-shift help desk: questions asked late in the evening are asked again just
    after midnight (the same request hash); the rest of the day's questions are new."""
    found = []
    for day in days():
        for n in range(40):
            found.append(
                record(
                    at(day, rng.uniform(9 * 3600, 22 * 3600)),
                    "gpt-4o",
                    "openai",
                    "helpdesk",
                    input_tokens=rng.randint(400, 900),
                    output_tokens=rng.randint(150, 400),
                    user=rng.choice(USERS),
                    request_hash=f"{day}-q{n}",
                )
            )
        if day == LAST:
            continue
        for n in range(12):
            shape = {
                "input_tokens": rng.randint(400, 900),
                "output_tokens": rng.randint(150, 400),
                "request_hash": f"{day}-late-{n}",
            }
            late = at(day, 23 * 3600 + rng.uniform(40 * 60, 59 * 60))
            again = at(day + timedelta(days=1), rng.uniform(60, 20 * 60))
            for ts in (late, again):
                found.append(
                    record(ts, "gpt-4o", "openai", "helpdesk", user=rng.choice(USERS), **shape)
                )
    return found


def test_a_question_asked_at_23_50_and_again_at_00_10_is_a_repeat() -> None:
    records = helpdesk_records(random.Random(8))
    # The old rule: a repeat only within the calendar day; there is none here.
    assert len({(r.day, r.request_hash) for r in records}) == len(records)
    rows = rollups(records)
    rec = only(recommend(rows, PERIOD), "response_cache", "helpdesk")
    assert rec.evidence["repeat_requests"] == 12 * (DAYS - 1)
    assert "seen in the previous 24 hours" in rec.detail
    assert rec.basis == "measured"


# --- every saving shown, recomputed from its evidence ------------------------------------------


def gemini_records(rng: random.Random) -> list[UsageRecord]:
    """A Gemini 2.5 Flash assistant with a 3,000-token prompt, never read from the cache."""
    found = []
    for day in days():
        for hour in range(8, 20):
            for _ in range(rng.randint(2, 40)):
                found.append(
                    record(
                        at(day, hour * 3600 + rng.uniform(0, 3600)),
                        "gemini-2.5-flash",
                        "google",
                        "gemini_assistant",
                        input_tokens=3000 + rng.randint(0, 800),
                        output_tokens=rng.randint(300, 600),
                        user=rng.choice(USERS),
                    )
                )
    return found


def test_every_saving_on_team_shaped_data_is_recomputed_from_its_evidence_to_the_cent() -> None:
    rng = random.Random(9)
    records = (
        triage_records(rng)
        + rag_records(rng)
        + drafting_records(rng, hashed=False, per_hour=(20, 30))
        + digest_records(rng)
        + helpdesk_records(rng)
        + gemini_records(rng)
    )
    report = recommend(rollups(records), PERIOD)
    shown = {
        (r.kind, r.feature, r.evidence.get("mode", r.evidence.get("signal")))
        for r in report.recommendations
    }
    assert {
        ("cheaper_model", "ticket_triage", "short_outputs"),
        ("prompt_caching", "docs_qa", "automatic"),
        ("prompt_caching", "drafting", "explicit"),
        ("prompt_caching", "gemini_assistant", "gemini"),
        ("batch_api", "morning_digest", "schedule"),
        ("response_cache", "helpdesk", None),
    } <= shown
    for rec in report.recommendations:
        assert to_the_cent(recomputed(rec), DAYS) == rec.monthly_savings_usd, (
            rec.kind,
            rec.feature,
        )
