"""Daily usage rollups: usage records → additive deltas (where they are stored: ``layout``).

Two rollups, both per UTC day, named by ``doc_id``:

- ``{day}_{provider}_{model}_{feature}``: ``DailyRollup``;
- ``{day}_{user}``: ``UserDailyRollup``.

Every counter is an integer (money in 1e-9 USD), so deltas are exact and sums are exact in
any order; ``min_input_tokens`` merges by taking the minimum. ``merge`` is associative and
commutative, and ``accumulate(a + b)`` equals
``merge(accumulate(a), accumulate(b, seen_request_hashes=<a's new hash markers>))``: the
store keeps a day as the rows of its day document plus parts, and reads their merge.

Idempotence (the aggregator's protocol; this module only provides the pure parts):

- a record is applied at most once: the aggregator creates
  ``usage_applied/{record_marker_id(record_id)}`` (create-if-absent) in the same atomic
  write as the deltas, and drops records whose marker already exists;
- repeated identical requests: a request is a *repeat* when a request with the same
  ``request_hash`` was already seen on the same day, provider, model and feature. The first
  one creates ``usage_request_hashes/{request_hash_marker_id(record)}``; pass the markers
  that already exist as ``seen_request_hashes`` and create ``RollupBatch.new_request_hashes``
  in the same atomic write as the deltas (retry the batch if a create fails).

One atomic Firestore write holds at most 500 operations, so the aggregator accumulates and
commits records in chunks that fit; chunking is safe because accumulations merge exactly.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from functools import cache
from typing import Any, ClassVar, Final, Self, TypeVar, get_origin

from pydantic import BaseModel, ConfigDict, Field

from shared import pricing
from shared.models.usage import UsageRecord
from shared.usage.histograms import (
    LATENCY_BOUNDS_MS,
    OUTPUT_TOKEN_BOUNDS,
    bucket_index,
    bucket_key,
    latency_percentile,
    merge_histograms,
)
from shared.usage.layout import hash_marker_id, rollup_doc_id, rollup_key, user_rollup_doc_id

Count = int
NonNegative: Final = Field(default=0, ge=0)


class _Rollup(BaseModel):
    """Counters merged by addition; identity fields (``IDENTITY``) must agree to merge."""

    # Documents read back from Firestore may carry bookkeeping fields of the aggregator.
    model_config = ConfigDict(frozen=True, extra="ignore")

    IDENTITY: ClassVar[tuple[str, ...]] = ()
    # Fields merged by taking the minimum.
    MINIMUMS: ClassVar[tuple[str, ...]] = ()

    requests: Count = NonNegative
    errors: Count = NonNegative
    input_tokens: Count = NonNegative
    cached_input_tokens: Count = NonNegative
    output_tokens: Count = NonNegative
    cost_nanousd: Count = NonNegative
    unpriced_requests: Count = NonNegative

    @property
    def cost_usd(self) -> float:
        return self.cost_nanousd / 1e9

    def merge(self, other: Self) -> Self:
        """The sum of two rollups of the same key (associative and commutative)."""
        merged = dict(vars(self))
        _add_into(type(self), merged, vars(other))
        return self.model_copy(update=merged)

    @classmethod
    def trusted(cls, fields: dict[str, Any]) -> Self:
        """A rollup of ``fields`` (every field, as this module's folds produce them), taken
        as they are: no validation, and ``fields`` becomes the model's own dict.

        For rows this code wrote itself (``shared.usage.parts`` checks their field names):
        a 90-day read builds tens of thousands, and validating each would cost more than
        reading them."""
        rollup = cls.__new__(cls)
        _set = object.__setattr__
        _set(rollup, "__dict__", fields)
        # Shared: a frozen model never changes its own; ``model_copy`` copies it first.
        _set(rollup, "__pydantic_fields_set__", _all_fields(cls))
        _set(rollup, "__pydantic_extra__", None)
        _set(rollup, "__pydantic_private__", None)
        return rollup


@cache
def _all_fields(cls: type[_Rollup]) -> set[str]:
    return set(cls.model_fields)


@cache
def _field_groups(
    cls: type[_Rollup],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """``cls``'s fields by how they merge: identity, minimums, histograms, counters.

    Worked out once per class: merging runs once per record the aggregator folds."""
    rest = [n for n in cls.model_fields if n not in cls.IDENTITY and n not in cls.MINIMUMS]
    hists = tuple(n for n in rest if get_origin(cls.model_fields[n].annotation) is dict)
    counters = tuple(n for n in rest if n not in hists)
    return cls.IDENTITY, cls.MINIMUMS, hists, counters


def _add_into(cls: type[_Rollup], total: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Add the fields of ``delta`` into ``total`` (both of rollup class ``cls``), in place."""
    identity, minimums, hists, counters = _field_groups(cls)
    for name in identity:
        if total[name] != delta[name]:
            raise ValueError(f"cannot merge rollups with different {name}")
    for name in minimums:
        # A rollup of no requests has no minimum to offer.
        if not total["requests"]:
            total[name] = delta[name]
        elif delta["requests"]:
            total[name] = min(total[name], delta[name])
    for name in hists:
        total[name] = merge_histograms(total[name], delta[name])
    for name in counters:
        total[name] += delta[name]


class UserDailyRollup(_Rollup):
    """One end user's usage on one UTC day (``user`` None: calls with no end user)."""

    IDENTITY: ClassVar[tuple[str, ...]] = ("day", "user")

    day: str
    user: str | None

    @property
    def doc_id(self) -> str:
        return user_rollup_doc_id(self.day, self.user)

    @classmethod
    def of_record(cls, record: UsageRecord, cost_nanousd: int | None) -> UserDailyRollup:
        """The delta one record adds (``cost_nanousd`` None: the model could not be priced)."""
        return cls.model_construct(**_user_delta(record, cost_nanousd))


def _counters(record: UsageRecord, cost_nanousd: int | None) -> dict[str, Any]:
    """The counters every rollup holds (the fields of ``_Rollup``)."""
    return {
        "requests": record.requests,
        "errors": record.requests if record.status == "error" else 0,
        "input_tokens": record.input_tokens,
        "cached_input_tokens": record.cached_input_tokens,
        "output_tokens": record.output_tokens,
        "cost_nanousd": cost_nanousd or 0,
        "unpriced_requests": record.requests if cost_nanousd is None else 0,
    }


def _user_delta(record: UsageRecord, cost_nanousd: int | None) -> dict[str, Any]:
    return {"day": record.day, "user": record.user, **_counters(record, cost_nanousd)}


class DailyRollup(_Rollup):
    """Usage of one (UTC day, provider, model, feature): requests, tokens, 1e-9 USD, histograms.

    Subsets, each with its own token and cost counters:
    ``no_user_*``: calls with no end user that were not batched (batch API candidates);
    ``batch_*``: calls that already went through a batch API;
    ``error_*``: failed calls (spend wasted);
    ``repeat_*``: repeated identical requests (response-cache candidates);
    ``hashed_requests`` counts the calls that carried a ``request_hash`` at all.
    Aggregate records (``requests > 1``) enter the histograms and ``min_input_tokens`` with
    their per-call averages, and no latency.
    """

    IDENTITY: ClassVar[tuple[str, ...]] = ("day", "provider", "model", "feature")
    MINIMUMS: ClassVar[tuple[str, ...]] = ("min_input_tokens",)

    day: str
    provider: str
    model: str
    feature: str | None
    latency_count: Count = NonNegative
    latency_ms_sum: Count = NonNegative
    latency_hist: dict[str, Count] = Field(default_factory=dict)
    output_hist: dict[str, Count] = Field(default_factory=dict)
    # Smallest per-call input: every call shared at most this prefix (cacheable-prefix floor).
    min_input_tokens: Count = NonNegative
    no_user_requests: Count = NonNegative
    no_user_input_tokens: Count = NonNegative
    no_user_cached_input_tokens: Count = NonNegative
    no_user_output_tokens: Count = NonNegative
    no_user_cost_nanousd: Count = NonNegative
    batch_requests: Count = NonNegative
    batch_cost_nanousd: Count = NonNegative
    error_input_tokens: Count = NonNegative
    error_cached_input_tokens: Count = NonNegative
    error_output_tokens: Count = NonNegative
    error_cost_nanousd: Count = NonNegative
    hashed_requests: Count = NonNegative
    repeat_requests: Count = NonNegative
    repeat_input_tokens: Count = NonNegative
    repeat_cached_input_tokens: Count = NonNegative
    repeat_output_tokens: Count = NonNegative
    repeat_cost_nanousd: Count = NonNegative

    @property
    def doc_id(self) -> str:
        return rollup_doc_id(self.day, self.provider, self.model, self.feature)

    @classmethod
    def of_record(
        cls, record: UsageRecord, cost_nanousd: int | None, *, repeat: bool
    ) -> DailyRollup:
        """The delta one record adds. ``repeat``: its request hash was seen before in scope."""
        return cls.model_construct(**_daily_delta(record, cost_nanousd, repeat=repeat))

    def latency_p50_p95(self) -> tuple[float | None, float | None]:
        """Latency p50 and p95 in ms, from the histogram."""
        return latency_percentile(self.latency_hist, 0.5), latency_percentile(
            self.latency_hist, 0.95
        )


def _daily_delta(record: UsageRecord, cost_nanousd: int | None, *, repeat: bool) -> dict[str, Any]:
    n = record.requests
    cost = cost_nanousd or 0
    tokens = (record.input_tokens, record.cached_input_tokens, record.output_tokens)

    def subset(selected: bool) -> tuple[int, int, int, int, int]:
        return (n, *tokens, cost) if selected else (0, 0, 0, 0, 0)

    no_user = subset(record.user is None and not record.batch)
    failed = subset(record.status == "error")
    repeated = subset(repeat)
    latency_hist: dict[str, int] = {}
    if record.latency_ms is not None:
        key = bucket_key(LATENCY_BOUNDS_MS, bucket_index(LATENCY_BOUNDS_MS, record.latency_ms))
        latency_hist[key] = n
    output_key = bucket_key(
        OUTPUT_TOKEN_BOUNDS, bucket_index(OUTPUT_TOKEN_BOUNDS, record.output_tokens / n)
    )
    return dict(
        day=record.day,
        provider=pricing.resolve_provider(record.provider, record.model),
        model=record.model,
        feature=record.feature,
        **_counters(record, cost_nanousd),
        latency_count=n if record.latency_ms is not None else 0,
        latency_ms_sum=round(record.latency_ms) if record.latency_ms is not None else 0,
        latency_hist=latency_hist,
        output_hist={output_key: n},
        min_input_tokens=record.input_tokens // n,
        no_user_requests=no_user[0],
        no_user_input_tokens=no_user[1],
        no_user_cached_input_tokens=no_user[2],
        no_user_output_tokens=no_user[3],
        no_user_cost_nanousd=no_user[4],
        batch_requests=n if record.batch else 0,
        batch_cost_nanousd=cost if record.batch else 0,
        error_input_tokens=failed[1],
        error_cached_input_tokens=failed[2],
        error_output_tokens=failed[3],
        error_cost_nanousd=failed[4],
        hashed_requests=n if record.request_hash is not None else 0,
        repeat_requests=repeated[0],
        repeat_input_tokens=repeated[1],
        repeat_cached_input_tokens=repeated[2],
        repeat_output_tokens=repeated[3],
        repeat_cost_nanousd=repeated[4],
    )


class RollupBatch(BaseModel):
    """The deltas of a batch of records, by document id, and the markers to create with them."""

    model_config = ConfigDict(frozen=True)

    daily: dict[str, DailyRollup] = Field(default_factory=dict)
    users: dict[str, UserDailyRollup] = Field(default_factory=dict)
    record_ids: frozenset[str] = frozenset()
    new_request_hashes: frozenset[str] = frozenset()

    def merge(self, other: RollupBatch) -> RollupBatch:
        """Both batches' deltas (``other`` accumulated after this one: see the module doc)."""
        overlap = self.record_ids & other.record_ids
        if overlap:
            raise ValueError(f"{len(overlap)} record(s) would be applied twice")
        return RollupBatch(
            daily=_merge_maps(self.daily, other.daily),
            users=_merge_maps(self.users, other.users),
            record_ids=self.record_ids | other.record_ids,
            new_request_hashes=self.new_request_hashes | other.new_request_hashes,
        )


_R = TypeVar("_R", bound=_Rollup)


def _merge_maps(a: Mapping[str, _R], b: Mapping[str, _R]) -> dict[str, _R]:
    merged = dict(a)
    for key, rollup in b.items():
        merged[key] = merged[key].merge(rollup) if key in merged else rollup
    return merged


def _fold(
    cls: type[_Rollup], totals: dict[str, dict[str, Any]], key: str, delta: dict[str, Any]
) -> None:
    if key in totals:
        _add_into(cls, totals[key], delta)
    else:
        totals[key] = delta


def record_cost_nanousd(record: UsageRecord) -> int | None:
    """The record's cost in 1e-9 USD at the prices of its timestamp; None if unpriced."""
    try:
        usd = pricing.call_cost(
            record.provider,
            record.model,
            input_tokens=record.input_tokens,
            cached_input_tokens=record.cached_input_tokens,
            output_tokens=record.output_tokens,
            at=record.ts,
            batch=record.batch,
            requests=record.requests,
        )
    except pricing.UnknownModelError:
        return None
    return pricing.to_nanousd(usd)


def accumulate(
    records: Iterable[UsageRecord],
    *,
    seen_request_hashes: Collection[str] = frozenset(),
    applied_record_ids: Collection[str] = frozenset(),
) -> RollupBatch:
    """Fold records into rollup deltas.

    Records whose id is in ``applied_record_ids``, or repeats an id earlier in ``records``,
    are skipped (applied at most once). A hashed record is a repeat when its
    ``request_hash_marker_id`` is in ``seen_request_hashes`` or came earlier in ``records``.
    """
    # Plain dicts while folding: building a model per record would dominate ingest time.
    daily: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    record_ids: set[str] = set()
    new_hashes: set[str] = set()
    for record in records:
        if record.record_id in applied_record_ids or record.record_id in record_ids:
            continue
        record_ids.add(record.record_id)
        key = rollup_key(record)
        marker = None if record.request_hash is None else hash_marker_id(key, record.request_hash)
        repeat = marker is not None and (marker in seen_request_hashes or marker in new_hashes)
        if marker is not None and not repeat:
            new_hashes.add(marker)
        cost = record_cost_nanousd(record)
        _fold(DailyRollup, daily, key, _daily_delta(record, cost, repeat=repeat))
        user_key = user_rollup_doc_id(record.day, record.user)
        _fold(UserDailyRollup, users, user_key, _user_delta(record, cost))
    return RollupBatch(
        daily={key: DailyRollup.model_construct(**data) for key, data in daily.items()},
        users={key: UserDailyRollup.model_construct(**data) for key, data in users.items()},
        record_ids=frozenset(record_ids),
        new_request_hashes=frozenset(new_hashes),
    )
