"""Daily usage rollups: usage records → additive deltas (where they are stored: ``layout``).

Two rollups, both per UTC day, named by ``doc_id``:

- ``{day}_{provider}_{model}_{feature}``: ``DailyRollup``;
- ``{day}_{user}_{provider}_{model}``: ``UserDailyRollup`` (per model, so that every row
  can be repriced from its tokens; a breakdown by user sums over models).

Every counter is an integer (money in 1e-9 USD), so deltas are exact and sums are exact in
any order; the sketches and the hour histogram add bin by bin; ``min_input_tokens`` and
``prefix_repeat_min_input_tokens`` merge by taking the minimum. ``merge`` is associative and
commutative, and ``accumulate(a + b)`` equals
``merge(accumulate(a), accumulate(b, markers=<a's markers>))``: the store keeps a day as the
rows of its day document plus parts, and reads their merge.

Idempotence (the aggregator's protocol; this module only provides the pure parts):

- a record is applied at most once: the aggregator creates
  ``usage_applied/{record_marker_id(record_id)}`` (create-if-absent) in the same atomic
  write as the deltas, and drops records whose marker already exists;
- repeats (``shared.usage.repeats``): a call repeats when its request hash was seen on the
  same provider, model and feature within 24 hours, or its prompt prefix hash within 5
  minutes. Pass the window markers known (``layout.marker_ids``) as ``markers``; the batch's
  ``markers`` are their states after it, which the aggregator writes (guarded by the version
  it read) in the same atomic write as the deltas, recomputing if a marker moved meanwhile.

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
from shared.usage import repeats, sketches
from shared.usage.layout import marker_ids, rollup_doc_id, rollup_key, user_rollup_doc_id

Count = int
NonNegative: Final = Field(default=0, ge=0)


class _Rollup(BaseModel):
    """Counters merged by addition; identity fields (``IDENTITY``) must agree to merge."""

    # Documents read back from Firestore may carry bookkeeping fields of the aggregator.
    model_config = ConfigDict(frozen=True, extra="ignore")

    IDENTITY: ClassVar[tuple[str, ...]] = ()
    # Fields merged by taking the minimum, each with the count of the calls it is the minimum
    # of (a rollup with none of them has no minimum to offer).
    MINIMUMS: ClassVar[Mapping[str, str]] = {}

    requests: Count = NonNegative
    errors: Count = NonNegative
    input_tokens: Count = NonNegative
    cached_input_tokens: Count = NonNegative
    output_tokens: Count = NonNegative
    cost_nanousd: Count = NonNegative
    unpriced_requests: Count = NonNegative
    # Calls that went through a provider's batch API, priced at its batch prices: their
    # tokens apart, so a row can be repriced (batch tokens at the batch price).
    batch_requests: Count = NonNegative
    batch_input_tokens: Count = NonNegative
    batch_cached_input_tokens: Count = NonNegative
    batch_output_tokens: Count = NonNegative
    batch_cost_nanousd: Count = NonNegative

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
    """``cls``'s fields by how they merge: identity, minimums, maps (added key by key),
    counters.

    Worked out once per class: merging runs once per record the aggregator folds."""
    rest = [n for n in cls.model_fields if n not in cls.IDENTITY and n not in cls.MINIMUMS]
    hists = tuple(n for n in rest if get_origin(cls.model_fields[n].annotation) is dict)
    counters = tuple(n for n in rest if n not in hists)
    return cls.IDENTITY, tuple(cls.MINIMUMS), hists, counters


def _add_into(cls: type[_Rollup], total: dict[str, Any], delta: Mapping[str, Any]) -> None:
    """Add the fields of ``delta`` into ``total`` (both of rollup class ``cls``), in place."""
    identity, minimums, hists, counters = _field_groups(cls)
    for name in identity:
        if total[name] != delta[name]:
            raise ValueError(f"cannot merge rollups with different {name}")
    for name in minimums:
        count = cls.MINIMUMS[name]
        if not total[count]:
            total[name] = delta[name]
        elif delta[count]:
            total[name] = min(total[name], delta[name])
    for name in hists:
        total[name] = sketches.merge(total[name], delta[name])
    for name in counters:
        total[name] += delta[name]


class UserDailyRollup(_Rollup):
    """One end user's usage of one model on one UTC day (``user`` None: calls with no end
    user)."""

    IDENTITY: ClassVar[tuple[str, ...]] = ("day", "user", "provider", "model")

    day: str
    user: str | None
    provider: str
    model: str

    @property
    def doc_id(self) -> str:
        return user_rollup_doc_id(self.day, self.user, self.provider, self.model)

    @classmethod
    def of_record(cls, record: UsageRecord, cost_nanousd: int | None) -> UserDailyRollup:
        """The delta one record adds (``cost_nanousd`` None: the model could not be priced)."""
        return cls.model_construct(**_user_delta(record, cost_nanousd))


def _counters(record: UsageRecord, cost_nanousd: int | None) -> dict[str, Any]:
    """The counters every rollup holds (the fields of ``_Rollup``)."""
    batch = record.batch
    return {
        "requests": record.requests,
        "errors": record.requests if record.status == "error" else 0,
        "input_tokens": record.input_tokens,
        "cached_input_tokens": record.cached_input_tokens,
        "output_tokens": record.output_tokens,
        "cost_nanousd": cost_nanousd or 0,
        "unpriced_requests": record.requests if cost_nanousd is None else 0,
        "batch_requests": record.requests if batch else 0,
        "batch_input_tokens": record.input_tokens if batch else 0,
        "batch_cached_input_tokens": record.cached_input_tokens if batch else 0,
        "batch_output_tokens": record.output_tokens if batch else 0,
        "batch_cost_nanousd": (cost_nanousd or 0) if batch else 0,
    }


def _user_delta(record: UsageRecord, cost_nanousd: int | None) -> dict[str, Any]:
    return {
        "day": record.day,
        "user": record.user,
        "provider": pricing.resolve_provider(record.provider, record.model),
        "model": record.model,
        **_counters(record, cost_nanousd),
    }


class DailyRollup(_Rollup):
    """Usage of one (UTC day, provider, model, feature): requests, tokens, 1e-9 USD, sketches.

    Subsets, each with its own token and cost counters:
    ``no_user_*``: calls with no end user that were not batched (batch API candidates);
    ``batch_*``: calls that already went through a batch API;
    ``error_*``: failed calls (spend wasted);
    ``repeat_*``: calls whose request hash was seen within 24 hours (response-cache
    candidates); ``hashed_requests`` counts the calls that carried a ``request_hash`` at all;
    ``prefix_hashed_*``: calls that carried a ``prompt_prefix_hash``; ``prefix_repeat_*``:
    those whose prefix hash was seen within 5 minutes (a prompt cache would be warm), with
    ``prefix_repeat_min_input_tokens`` the smallest input among them (the repeated prefix is
    at most that long).
    ``hour_hist``: calls by UTC hour of day (``"00"``..``"23"``); ``latency_sketch`` and
    ``output_sketch``: DDSketch bins (``shared.usage.sketches``).
    Aggregate records (``requests > 1``) enter the sketches and ``min_input_tokens`` with
    their per-call averages, and no latency.
    """

    IDENTITY: ClassVar[tuple[str, ...]] = ("day", "provider", "model", "feature")
    MINIMUMS: ClassVar[Mapping[str, str]] = {
        "min_input_tokens": "requests",
        "prefix_repeat_min_input_tokens": "prefix_repeat_requests",
    }

    day: str
    provider: str
    model: str
    feature: str | None
    latency_count: Count = NonNegative
    latency_ms_sum: Count = NonNegative
    latency_sketch: dict[str, Count] = Field(default_factory=dict)
    output_sketch: dict[str, Count] = Field(default_factory=dict)
    hour_hist: dict[str, Count] = Field(default_factory=dict)
    # Smallest per-call input: every call shared at most this prefix (cacheable-prefix floor).
    min_input_tokens: Count = NonNegative
    no_user_requests: Count = NonNegative
    no_user_input_tokens: Count = NonNegative
    no_user_cached_input_tokens: Count = NonNegative
    no_user_output_tokens: Count = NonNegative
    no_user_cost_nanousd: Count = NonNegative
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
    prefix_hashed_requests: Count = NonNegative
    prefix_hashed_input_tokens: Count = NonNegative
    prefix_repeat_requests: Count = NonNegative
    prefix_repeat_input_tokens: Count = NonNegative
    prefix_repeat_cached_input_tokens: Count = NonNegative
    prefix_repeat_min_input_tokens: Count = NonNegative

    @property
    def doc_id(self) -> str:
        return rollup_doc_id(self.day, self.provider, self.model, self.feature)

    @classmethod
    def of_record(
        cls,
        record: UsageRecord,
        cost_nanousd: int | None,
        *,
        repeat: int,
        prefix_repeat: int = 0,
    ) -> DailyRollup:
        """The delta one record adds. ``repeat`` and ``prefix_repeat``: the repeats it is
        credited with (``repeats.credit``: 0, 1 or 2; a bool reads as 0 or 1)."""
        return cls.model_construct(
            **_daily_delta(record, cost_nanousd, repeat=repeat, prefix_repeat=prefix_repeat)
        )

    def latency_p50_p95(self) -> tuple[float | None, float | None]:
        """Latency p50 and p95 in ms, from the sketch."""
        return sketches.latency_quantile(self.latency_sketch, 0.5), sketches.latency_quantile(
            self.latency_sketch, 0.95
        )


def _daily_delta(
    record: UsageRecord, cost_nanousd: int | None, *, repeat: int, prefix_repeat: int
) -> dict[str, Any]:
    n = record.requests
    cost = cost_nanousd or 0
    tokens = (record.input_tokens, record.cached_input_tokens, record.output_tokens)

    def subset(times: int) -> tuple[int, int, int, int, int]:
        # A repeat credit of 2 counts this call for the call it made a repeat (whose tokens
        # the marker does not keep): see ``shared.usage.repeats``.
        return (n * times, tokens[0] * times, tokens[1] * times, tokens[2] * times, cost * times)

    no_user = subset(int(record.user is None and not record.batch))
    failed = subset(int(record.status == "error"))
    repeated = subset(repeat)
    prefixed = record.prompt_prefix_hash is not None
    prefix_repeated = subset(prefix_repeat)
    latency_sketch: dict[str, int] = {}
    if record.latency_ms is not None:
        latency_sketch[sketches.bin_key(record.latency_ms)] = n
    return dict(
        day=record.day,
        provider=pricing.resolve_provider(record.provider, record.model),
        model=record.model,
        feature=record.feature,
        **_counters(record, cost_nanousd),
        latency_count=n if record.latency_ms is not None else 0,
        latency_ms_sum=round(record.latency_ms) if record.latency_ms is not None else 0,
        latency_sketch=latency_sketch,
        output_sketch={sketches.bin_key(record.output_tokens / n): n},
        hour_hist={f"{record.ts.hour:02d}": n},
        min_input_tokens=record.input_tokens // n,
        no_user_requests=no_user[0],
        no_user_input_tokens=no_user[1],
        no_user_cached_input_tokens=no_user[2],
        no_user_output_tokens=no_user[3],
        no_user_cost_nanousd=no_user[4],
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
        prefix_hashed_requests=n if prefixed else 0,
        prefix_hashed_input_tokens=record.input_tokens if prefixed else 0,
        prefix_repeat_requests=prefix_repeated[0],
        prefix_repeat_input_tokens=prefix_repeated[1],
        prefix_repeat_cached_input_tokens=prefix_repeated[2],
        prefix_repeat_min_input_tokens=record.input_tokens // n if prefix_repeat else 0,
    )


class RollupBatch(BaseModel):
    """The deltas of a batch of records, by name, and the markers to write with them:
    ``markers`` holds, for every window marker the batch touched, its state after the batch
    (``shared.usage.repeats``; the aggregator writes those that changed enough)."""

    model_config = ConfigDict(frozen=True)

    daily: dict[str, DailyRollup] = Field(default_factory=dict)
    users: dict[str, UserDailyRollup] = Field(default_factory=dict)
    record_ids: frozenset[str] = frozenset()
    markers: dict[str, dict[int, tuple[int, int]]] = Field(default_factory=dict)

    def merge(self, other: RollupBatch) -> RollupBatch:
        """Both batches' deltas (``other`` accumulated after this one: see the module doc)."""
        overlap = self.record_ids & other.record_ids
        if overlap:
            raise ValueError(f"{len(overlap)} record(s) would be applied twice")
        return RollupBatch(
            daily=_merge_maps(self.daily, other.daily),
            users=_merge_maps(self.users, other.users),
            record_ids=self.record_ids | other.record_ids,
            # ``other`` started from this batch's markers: its states are the later ones.
            markers={**self.markers, **other.markers},
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
    markers: Mapping[str, repeats.Slots] | None = None,
    applied_record_ids: Collection[str] = frozenset(),
) -> RollupBatch:
    """Fold records into rollup deltas, in order.

    Records whose id is in ``applied_record_ids``, or repeats an id earlier in ``records``,
    are skipped (applied at most once). A record repeats (request or prompt prefix) when its
    window marker (``layout.marker_ids``), as given in ``markers`` (absent: none) and noted
    by the records before it, has seen its hash within the window; it is credited with the
    repeats ``repeats.credit`` gives (their sum does not depend on the order).
    """
    known = markers or {}
    # Plain dicts while folding: building a model per record would dominate ingest time.
    daily: dict[str, dict[str, Any]] = {}
    users: dict[str, dict[str, Any]] = {}
    record_ids: set[str] = set()
    touched: dict[str, dict[int, tuple[int, int]]] = {}
    for record in records:
        if record.record_id in applied_record_ids or record.record_id in record_ids:
            continue
        record_ids.add(record.record_id)
        repeat = prefix_repeat = 0
        at = repeats.micros(record.ts)
        for window, marker in marker_ids(record):
            slots = touched[marker] if marker in touched else known.get(marker, {})
            found = repeats.credit(slots, at, window)
            touched[marker] = repeats.noted(slots, at, window)
            if window is repeats.REQUEST:
                repeat = found
            else:
                prefix_repeat = found
        cost = record_cost_nanousd(record)
        delta = _daily_delta(record, cost, repeat=repeat, prefix_repeat=prefix_repeat)
        _fold(DailyRollup, daily, rollup_key(record), delta)
        user = _user_delta(record, cost)
        user_key = user_rollup_doc_id(record.day, record.user, user["provider"], record.model)
        _fold(UserDailyRollup, users, user_key, user)
    return RollupBatch(
        daily={key: DailyRollup.model_construct(**data) for key, data in daily.items()},
        users={key: UserDailyRollup.model_construct(**data) for key, data in users.items()},
        record_ids=frozenset(record_ids),
        markers=touched,
    )
