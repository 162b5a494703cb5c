"""Fixed-bucket histograms (latency, output tokens): bucket keys, merging, percentiles.

The buckets are fixed so that histograms from any day, model or batch add up bucket by
bucket; percentiles of a period therefore come from its rollups alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

# Upper bounds (inclusive) of the fixed histogram buckets; a last, open bucket holds the rest.
# Fixed so that histograms from any day, model or batch add up bucket by bucket.
LATENCY_BOUNDS_MS: Final[tuple[int, ...]] = (
    25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 15000,
    20000, 30000, 60000, 120000,
)  # fmt: skip
OUTPUT_TOKEN_BOUNDS: Final[tuple[int, ...]] = (
    16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768,
)  # fmt: skip
OVERFLOW_BUCKET: Final = "le_inf"


def bucket_key(bounds: Sequence[int], index: int) -> str:
    """Map key of bucket ``index``: ``le_<bound>``, or ``le_inf`` for the open last one."""
    return OVERFLOW_BUCKET if index == len(bounds) else f"le_{bounds[index]}"


def bucket_index(bounds: Sequence[int], value: float) -> int:
    """Index of the bucket holding ``value``: the first bound ``>= value``."""
    for index, bound in enumerate(bounds):
        if value <= bound:
            return index
    return len(bounds)


def histogram_percentile(hist: Mapping[str, int], bounds: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a fixed-bucket histogram, interpolated within its bucket.

    Linear interpolation between the bucket's lower bound (the previous bound, 0 for the first
    bucket) and its upper bound. A quantile landing in the open last bucket is reported as the
    last bound (the histogram says only "more than that"). None for an empty histogram.
    """
    if not 0 <= q <= 1:
        raise ValueError("q must be within 0..1")
    counts = [hist.get(bucket_key(bounds, i), 0) for i in range(len(bounds) + 1)]
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = 0 if index == 0 else bounds[index - 1]
            if index == len(bounds):
                return float(lower)
            return lower + (bounds[index] - lower) * (rank - seen) / count
        seen += count
    raise AssertionError("unreachable: the ranks are exhausted before the counts")


def latency_percentile(hist: Mapping[str, int], q: float) -> float | None:
    """Latency quantile in ms from a ``latency_hist``."""
    return histogram_percentile(hist, LATENCY_BOUNDS_MS, q)


def output_tokens_percentile(hist: Mapping[str, int], q: float) -> float | None:
    """Output-token quantile from an ``output_hist``."""
    return histogram_percentile(hist, OUTPUT_TOKEN_BOUNDS, q)


def merge_histograms(a: Mapping[str, int], b: Mapping[str, int]) -> dict[str, int]:
    merged = dict(a)
    for key, count in b.items():
        merged[key] = merged.get(key, 0) + count
    return merged
