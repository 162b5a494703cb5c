"""The dimensions usage is broken down by (``group_by``)."""

from __future__ import annotations

from typing import Final, Literal

Dimension = Literal["model", "provider", "feature", "user", "day"]
DIMENSIONS: Final[tuple[Dimension, ...]] = ("model", "provider", "feature", "user", "day")
