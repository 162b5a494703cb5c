"""The kinds of savings recommendation (DESIGN §8), shared by the optimization agent, its
API models and the synthetic generator that plants one inefficiency of each kind."""

from __future__ import annotations

from typing import Final, Literal, get_args

RecommendationKind = Literal[
    "cheaper_model",
    "prompt_caching",
    "batch_api",
    "trim_outputs",
    "response_cache",
    "failed_calls",
    "deprecated_model",
]
KINDS: Final[tuple[RecommendationKind, ...]] = get_args(RecommendationKind)
