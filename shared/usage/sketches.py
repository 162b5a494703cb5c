"""Quantile sketches of latency and output tokens: DDSketch bins (the ``ddsketch`` package's
logarithmic mapping), stored in rollups as maps bin key → count.

A value ``v > 0`` goes to bin ``k = ceil(log_g v)`` with ``g = (1 + a) / (1 - a)`` and
``a = RELATIVE_ACCURACY`` (1%): every value of bin ``k`` lies in ``(g^(k-1), g^k]``, and the
bin's representative value is within ``a`` of each of them. Zero (and anything too small for
the mapping) goes to bin ``"z"``. The bins are fixed by ``a`` alone, so sketches of any day,
model, feature or shard merge by adding counts, and a quantile of the merge is within ``a``
(relative) of the exact quantile of all the values: DDSketch's guarantee, which the
fixed-bucket histograms this replaces did not have (a p95 anywhere in a 60-120 s bucket).

The quantile follows ``ddsketch.DDSketch.get_quantile_value``: rank ``q*(n - 1)``, the value
of the first bin whose cumulative count passes it (the "lower" empirical quantile).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Final

from ddsketch.mapping import LogarithmicMapping

RELATIVE_ACCURACY: Final = 0.01
ZERO_KEY: Final = "z"
_MAPPING: Final = LogarithmicMapping(RELATIVE_ACCURACY)

Sketch = dict[str, int]


def bin_key(value: float) -> str:
    """The key of the bin holding ``value`` (≥ 0)."""
    if value < 0:
        raise ValueError("sketched values are never negative")
    if value <= _MAPPING.min_possible:
        return ZERO_KEY
    return str(_MAPPING.key(value))


@lru_cache(maxsize=8192)
def bin_value(key: str) -> float:
    """The bin's representative value (within ``RELATIVE_ACCURACY`` of all it holds)."""
    return 0.0 if key == ZERO_KEY else float(_MAPPING.value(int(key)))


@lru_cache(maxsize=8192)
def bin_lower(key: str) -> float:
    """The bin's lower bound, exclusive: every value it holds is above it (0 for ``"z"``)."""
    if key == ZERO_KEY:
        return 0.0
    # value(k) = g^k * 2 / (1 + g), and the bin is (g^(k-1), g^k].
    gamma = _MAPPING.gamma
    return float(_MAPPING.value(int(key))) * (1 + gamma) / (2 * gamma)


def sketch_of(values: Iterable[float]) -> Sketch:
    """The sketch of ``values`` (each counted once)."""
    sketch: Sketch = {}
    for value in values:
        key = bin_key(value)
        sketch[key] = sketch.get(key, 0) + 1
    return sketch


def merge(a: Mapping[str, int], b: Mapping[str, int]) -> Sketch:
    """The sketch of both sketches' values: counts added bin by bin."""
    merged = dict(a)
    for key, count in b.items():
        merged[key] = merged.get(key, 0) + count
    return merged


def merge_all(sketches: Iterable[Mapping[str, int]]) -> Sketch:
    total: Sketch = {}
    for sketch in sketches:
        for key, count in sketch.items():
            total[key] = total.get(key, 0) + count
    return total


@lru_cache(maxsize=8192)
def _order(key: str) -> float:
    return -math.inf if key == ZERO_KEY else int(key)


def quantiles(sketch: Mapping[str, int], qs: Sequence[float]) -> list[float | None]:
    """The ``qs`` quantiles (each 0..1) of the sketched values, from one sort of the bins;
    None each for an empty sketch."""
    if not all(0 <= q <= 1 for q in qs):
        raise ValueError("q must be within 0..1")
    keys = sorted((k for k, c in sketch.items() if c > 0), key=_order)
    total = sum(sketch[k] for k in keys)
    if total == 0:
        return [None for _ in qs]
    found: list[float | None] = []
    for q in qs:
        rank = q * (total - 1)
        seen = 0
        for key in keys:
            seen += sketch[key]
            if seen > rank:
                found.append(bin_value(key))
                break
        else:
            found.append(bin_value(keys[-1]))
    return found


def quantile(sketch: Mapping[str, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of the sketched values; None for an empty sketch."""
    return quantiles(sketch, (q,))[0]


def latency_quantile(sketch: Mapping[str, int], q: float) -> float | None:
    """Latency quantile in ms from a ``latency_sketch``."""
    return quantile(sketch, q)


def latency_quantiles(sketch: Mapping[str, int], qs: Sequence[float]) -> list[float | None]:
    """Latency quantiles in ms from a ``latency_sketch``, one sort for all."""
    return quantiles(sketch, qs)


def output_quantile(sketch: Mapping[str, int], q: float) -> float | None:
    """Output-token quantile from an ``output_sketch``."""
    return quantile(sketch, q)


def excess_over(sketch: Mapping[str, int], cap: float) -> int:
    """sum over the bins above ``cap`` of count x (the bin's lower bound - cap), rounded down:
    output tokens beyond ``cap`` that the sketch proves (every value of a bin is above its
    lower bound), a conservative excess for trimming."""
    excess = 0.0
    for key, count in sketch.items():
        lower = bin_lower(key)
        if lower > cap:
            excess += count * (lower - cap)
    return math.floor(excess)
