"""DDSketch bins in rollups: quantiles within 1% of the raw records', mergeable, compact."""

from __future__ import annotations

import json
import math
import random
import zlib

import pytest
from ddsketch import DDSketch

from shared.usage import sketches
from shared.usage.sketches import (
    RELATIVE_ACCURACY,
    bin_key,
    bin_lower,
    excess_over,
    latency_quantile,
    merge,
    merge_all,
    output_quantile,
    sketch_of,
)

QUANTILES = (0.5, 0.95, 0.99)


def exact(values: list[float], q: float) -> float:
    """The "lower" empirical quantile: the value of rank floor(q*(n - 1))."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def lognormal(rng: random.Random, n: int, mu: float = 6.5, sigma: float = 1.0) -> list[float]:
    return [rng.lognormvariate(mu, sigma) for _ in range(n)]


def test_quantiles_are_within_the_relative_accuracy_of_the_raw_records() -> None:
    values = lognormal(random.Random(1), 10_000)
    sketch = sketch_of(values)
    for q in QUANTILES:
        got = latency_quantile(sketch, q)
        assert got is not None
        assert abs(got - exact(values, q)) <= RELATIVE_ACCURACY * exact(values, q) + 1e-9, q


def test_the_quantile_is_the_library_s() -> None:
    values = lognormal(random.Random(2), 3_000, mu=3, sigma=2) + [0.0] * 40
    reference = DDSketch(RELATIVE_ACCURACY)
    for value in values:
        reference.add(value)
    sketch = sketch_of(values)
    for q in (0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0):
        assert output_quantile(sketch, q) == pytest.approx(reference.get_quantile_value(q))


def test_the_old_buckets_error_is_gone() -> None:
    # The fixed 60-120 s bucket reported a p95 of 113 s for calls that all took 62-64 s.
    values = [62_000 + 2_000 * i / 999 for i in range(1000)]
    p95 = latency_quantile(sketch_of(values), 0.95)
    assert p95 is not None
    assert abs(p95 - exact(values, 0.95)) <= 0.01 * exact(values, 0.95)


def test_merging_across_days_models_and_shards_is_the_sketch_of_the_union() -> None:
    rng = random.Random(3)
    pieces = [lognormal(rng, rng.randrange(1, 3000), mu=rng.uniform(2, 9)) for _ in range(12)]
    union = [v for piece in pieces for v in piece]
    merged = merge_all(sketch_of(piece) for piece in pieces)
    assert merged == sketch_of(union)
    # Associative and commutative, as rollup merges must be.
    a, b, c = (sketch_of(p) for p in pieces[:3])
    assert merge(merge(a, b), c) == merge(a, merge(b, c)) == merge(c, merge(b, a))
    for q in QUANTILES:
        got = latency_quantile(merged, q)
        assert got is not None
        assert abs(got - exact(union, q)) <= RELATIVE_ACCURACY * exact(union, q) + 1e-9


def test_zero_and_empty() -> None:
    assert bin_key(0) == sketches.ZERO_KEY
    assert latency_quantile({}, 0.5) is None
    assert latency_quantile({"z": 3}, 0.99) == 0.0
    with pytest.raises(ValueError, match="q must be"):
        latency_quantile({"z": 1}, 1.5)
    with pytest.raises(ValueError, match="negative"):
        bin_key(-1)


def test_every_value_of_a_bin_is_above_its_lower_bound() -> None:
    for value in [1, 2, 3, 10, 99, 100, 101, 1023, 1024, 5000, 123_456]:
        lower = bin_lower(bin_key(value))
        assert lower < value <= lower * (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY) + 1e-9


def test_excess_over_a_cap_is_conservative_and_close() -> None:
    rng = random.Random(4)
    outputs = [rng.randrange(50, 400) for _ in range(5000)] + [
        rng.randrange(2500, 6000) for _ in range(800)
    ]
    cap = 800
    true_excess = sum(max(o - cap, 0) for o in outputs)
    got = excess_over(sketch_of(outputs), cap)
    assert isinstance(got, int)
    assert got <= true_excess
    # Each value is at most 2% above its bin's lower bound: the excess is nearly all found.
    assert got >= true_excess - 0.02 * sum(o for o in outputs if o > cap)
    assert excess_over(sketch_of(outputs), 10_000) == 0
    assert excess_over({}, 0) == 0


def test_a_day_of_100k_calls_stays_small(capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(5)
    latency = sketch_of(lognormal(rng, 100_000, mu=7, sigma=1.2))
    output = sketch_of([round(v) for v in lognormal(rng, 100_000, mu=5, sigma=1.5)])
    for name, sketch in (("latency", latency), ("output", output)):
        text = json.dumps(sketch, separators=(",", ":")).encode()
        with capsys.disabled():
            print(
                f"\n{name}_sketch of 100k calls: {len(sketch)} bins, {len(text)} bytes JSON, "
                f"{len(zlib.compress(text, 6))} bytes zlib"
            )
        # The range of the values, not their number, bounds the bins: log_g(max/min).
        assert len(sketch) <= 1200
        assert len(text) <= 16_000
