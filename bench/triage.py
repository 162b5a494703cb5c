"""Triage's rule engine, a message at a time (issue 15: p50 <= 1 ms a message).

    .venv/bin/python -m bench.triage [--rounds 15]

Times ``analyze`` on every message of the labelled set and the fresh sample (tests/data;
370 messages; follow-ups with their thread's context, as the triage step reads them), one
call per sample. The baseline, in the same run and process, is the engine as it was before
issue 15 (``BASELINE_COMMIT``: no context, no typos, no loose names), loaded from git; each
round times both engines over every message, in alternating order, and the figures are the
median of the rounds' p50 (and p99) with the range, and the median and range of the rounds'
ratios. Also one message of the maximum size (8,000 characters).
"""

from __future__ import annotations

import argparse
import importlib
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.common import percentile, report
from shared.agents.triage.intent import MAX_MESSAGE_CHARS, analyze
from shared.models.context import ThreadContext
from tests.data.score import FEATURES, FRESH, LABELLED, MODELS, NOW, PROVIDERS, parse

# The last commit before issue 15's triage.
BASELINE_COMMIT = "d6b49b4"
ROOT = Path(__file__).resolve().parents[1]
_BASELINE_PACKAGE = "bench_triage_before"


def baseline_engine(work: Path) -> ModuleType:
    """The triage engine at ``BASELINE_COMMIT``, importable as its own package."""
    package = work / _BASELINE_PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in ("intent", "entities", "periods"):
        source = subprocess.run(
            ["git", "show", f"{BASELINE_COMMIT}:shared/agents/triage/{name}.py"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (package / f"{name}.py").write_text(
            source.replace("shared.agents.triage.", f"{_BASELINE_PACKAGE}.")
        )
    sys.path.insert(0, str(work))
    return importlib.import_module(f"{_BASELINE_PACKAGE}.intent")


Call = Callable[[], Any]


def time_calls(calls: list[Call]) -> list[float]:
    samples = []
    for call in calls:
        started = time.perf_counter()
        call()
        samples.append(time.perf_counter() - started)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        before = baseline_engine(Path(work))
        found = contexts_in_order()
        now: datetime = NOW

        def new(message: str, context: ThreadContext | None = None) -> object:
            return analyze(
                message,
                now=now,
                known_models=MODELS,
                known_features=FEATURES,
                known_providers=PROVIDERS,
                context=context,
            )

        def old(message: str) -> object:
            return before.analyze(
                message,
                now=now,
                known_models=MODELS,
                known_features=FEATURES,
                known_providers=PROVIDERS,
            )

        new_calls: list[Call] = [partial(new, m, c) for m, c in found]
        old_calls: list[Call] = [partial(old, m) for m, _ in found]
        biggest = ("what did we spend on gpt-4o last week and where can we save? " * 200)[
            :MAX_MESSAGE_CHARS
        ]
        for call in (*new_calls, *old_calls):
            call()  # warm: compiled patterns, caches of the catalogue's matchers
        rounds: list[dict[str, float]] = []
        for index in range(args.rounds):
            order = [("new", new_calls), ("old", old_calls)]
            if index % 2:
                order.reverse()
            result: dict[str, float] = {}
            for name, calls in order:
                samples = time_calls(calls)
                result[f"{name}_p50"] = percentile(samples, 0.5) * 1000
                result[f"{name}_p99"] = percentile(samples, 0.99) * 1000
            result["ratio"] = result["new_p50"] / result["old_p50"]
            big = time_calls([partial(new, biggest)] * 5)
            big_old = time_calls([partial(old, biggest)] * 5)
            result["new_max_size_ms"] = statistics.median(big) * 1000
            result["old_max_size_ms"] = statistics.median(big_old) * 1000
            rounds.append(result)

    def spread(key: str, digits: int = 3) -> tuple[float, float, float]:
        values = [r[key] for r in rounds]
        return (
            round(statistics.median(values), digits),
            round(min(values), digits),
            round(max(values), digits),
        )

    rows = []
    for label, key in (
        ("p50 a message (ms)", "p50"),
        ("p99 a message (ms)", "p99"),
        ("8,000-character message (ms)", "max_size_ms"),
    ):
        now_ms, before_ms = spread(f"new_{key}"), spread(f"old_{key}")
        rows.append(
            [
                label,
                f"{now_ms[0]} ({now_ms[1]}-{now_ms[2]})",
                f"{before_ms[0]} ({before_ms[1]}-{before_ms[2]})",
            ]
        )
    ratio = spread("ratio", 2)
    rows.append(["p50 ratio, this / before", f"{ratio[0]} ({ratio[1]}-{ratio[2]})", "1"])
    report(
        "triage",
        ["measure", "triage now (median, range)", f"before issue 15 ({BASELINE_COMMIT})"],
        rows,
        {"messages": len(found), "rounds": rounds, "target_p50_ms": 1.0},
    )


def contexts_in_order() -> list[tuple[str, ThreadContext | None]]:
    """Each labelled message and the thread context it is triaged with."""
    from shared.agents.data import driver_days
    from shared.agents.triage.context import next_context
    from shared.agents.triage.intent import decide_route
    from shared.models.triage import TriageResponse
    from tests.data.score import _workspace

    rows, data, optimization = _workspace()
    found: list[tuple[str, ThreadContext | None]] = []
    for path in (LABELLED, FRESH):
        for chain in parse(path):
            context: ThreadContext | None = None
            for turn in chain.turns:
                found.append((turn.message, context))
                result = analyze(
                    turn.message,
                    now=NOW,
                    known_models=MODELS,
                    known_features=FEATURES,
                    known_providers=PROVIDERS,
                    context=context,
                )
                triaged = TriageResponse.build(result, decide_route(result, has_usage_data=True))
                agents = triaged.route.agents
                context = next_context(
                    context,
                    run_id="bench",
                    question=turn.message,
                    triaged=triaged,
                    data=data if "data" in agents else None,
                    optimization=optimization if "optimization" in agents else None,
                    driver_days=driver_days(rows, data.anomalies) if "data" in agents else (),
                )
    return found


if __name__ == "__main__":
    main()
