"""How many budgets a workspace may have (DESIGN §11): the rules refuse more (409), the
store sizes its page documents by it, the benchmark measures a tick at it."""

from __future__ import annotations

from typing import Final

MAX_BUDGETS: Final = 1_000
