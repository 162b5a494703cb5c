"""Scores triage on a labelled question file (``triage_questions.txt``, ``triage_fresh.txt``;
the format is in the first file's header): intent accuracy per intent, and how many
follow-ups (turns after the first of a chain) were resolved in full.

    .venv/bin/python -m tests.data.score [FILE ...]

prints the table docs/triage.md quotes. A chain's earlier turns are answered from the
synthetic workspace's findings (``devstack.synthetic``: 7 recommendations, 1 anomaly), as
the pipeline would: the agents its route names report, and the thread's context is what
``next_context`` keeps.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path

from devstack.synthetic import generate
from shared.agents.data import driver_days
from shared.agents.triage.context import next_context
from shared.agents.triage.intent import analyze, decide_route
from shared.models.context import ThreadContext
from shared.models.findings import DataReport, OptimizationReport
from shared.models.period import PeriodRange, day_start, resolve_token, to_date_end
from shared.models.triage import Intent, TriageResponse
from shared.usage.recommend import recommend
from shared.usage.report import build_data_report, days_needed, days_of
from shared.usage.rollups import DailyRollup, accumulate

HERE = Path(__file__).parent
LABELLED = HERE / "triage_questions.txt"
FRESH = HERE / "triage_fresh.txt"
NOW = datetime(2026, 11, 20, 15, 30, tzinfo=UTC)
# The synthetic workspace's names, and a few more a workspace may have.
MODELS = (
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4.1",
    "claude-sonnet-4-6",
    "claude-haiku-4-5",
    "command-light",
    "command-r",
    "gemini-2.0-flash",
)
FEATURES = (
    "chat_assistant",
    "classify_ticket",
    "code_review",
    "contract_review",
    "extract_invoice",
    "faq_answer",
    "legacy_tagging",
    "nightly_digest",
    "research_agent",
    "summarize_thread",
    "summarize",
    "support_bot",
)
PROVIDERS = ("openai", "anthropic", "cohere", "google")


@dataclass(frozen=True)
class Labelled:
    intent: Intent
    message: str
    checks: dict[str, str]
    line: int


@dataclass
class Chain:
    title: str
    turns: list[Labelled] = field(default_factory=list)


def parse(path: Path) -> list[Chain]:
    """Every question of the file, each single question a chain of one turn."""
    chains: list[Chain] = []
    current: Chain | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("=="):
            current = Chain(line[2:].strip())
            chains.append(current)
            continue
        follow = line.startswith(">")
        intent, message, *rest = (part.strip() for part in line.lstrip("> ").split("|"))
        checks = {}
        for item in (rest[0] if rest else "").split(";"):
            if item.strip():
                key, _, value = item.partition("=")
                checks[key.strip()] = value.strip()
        turn = Labelled(Intent(intent), message, checks, number)
        if follow:
            if current is None or not current.turns:
                raise ValueError(f"{path}:{number}: a follow-up outside a chain")
            current.turns.append(turn)
        elif current is not None and not current.turns:
            current.turns.append(turn)
        else:
            current = None
            chains.append(Chain(f"line {number}", [turn]))
    return chains


@cache
def _workspace() -> tuple[list[DailyRollup], DataReport, OptimizationReport]:
    end = date(2026, 11, 20)
    rows = list(accumulate(generate(end=end, days=60).records).daily.values())
    period = PeriodRange(
        start=day_start(end - timedelta(days=29)), end=day_start(end) + timedelta(days=1)
    )
    own = set(days_needed(period))
    data = build_data_report([r for r in rows if r.day in own], [], period)
    optimization = recommend([r for r in rows if r.day in set(days_of(period))], period)
    return rows, data, optimization


def _period(spec: str) -> tuple[datetime, datetime] | None:
    if spec == "none":
        return None
    if ".." in spec:
        first, last = spec.split("..")
        start = day_start(date.fromisoformat(first))
        end = to_date_end(NOW) if last == "now" else day_start(date.fromisoformat(last))
        return start, end
    period = resolve_token(spec, NOW)
    return period.start, period.end


def _names(spec: str) -> list[str]:
    return [] if spec == "none" else sorted(n.strip() for n in spec.split(",") if n.strip())


def failures(turn: Labelled, triaged: TriageResponse) -> list[str]:
    """What the triage got wrong for this turn (empty: all right)."""
    wrong = []
    entities = triaged.entities
    if triaged.intent is not turn.intent:
        wrong.append(f"intent {triaged.intent.value}")
    for key, want in turn.checks.items():
        got: str
        match key:
            case "answer":
                got = str(triaged.route.answer)
                ok = got == want
            case "intents":
                got = ",".join(i.value for i in entities.intents)
                ok = got == want
            case "period":
                period = entities.period
                got = f"{period.start}..{period.end}" if period else "none"
                expected = _period(want)
                ok = (None if period is None else (period.start, period.end)) == expected
            case "models" | "features" | "providers":
                names = sorted(m.name for m in getattr(entities, key))
                got, ok = ",".join(names) or "none", names == _names(want)
            case "ref":
                reference = entities.reference
                kind, _, ranks = want.partition(":")
                expected_ranks = [int(r) for r in ranks.split(",") if r]
                got = f"{reference.kind}:{reference.ranks}" if reference else "none"
                ok = reference is not None and (reference.kind, reference.ranks) == (
                    kind,
                    expected_ranks,
                )
            case "what_if":
                what_if = entities.what_if
                got = (
                    "none"
                    if what_if is None
                    else what_if.model + (f"@{what_if.feature}" if what_if.feature else "")
                )
                ok = got == want
            case "inherited":
                got = ",".join(entities.inherited)
                ok = set(want.split(",")) <= set(entities.inherited)
            case _:
                raise ValueError(f"line {turn.line}: unknown check {key}")
        if not ok:
            wrong.append(f"{key} {got} (want {want})")
    return wrong


@dataclass(frozen=True)
class Scored:
    turn: Labelled
    follow_up: bool
    wrong: list[str]
    triaged: TriageResponse

    @property
    def intent_right(self) -> bool:
        return self.triaged.intent is self.turn.intent


def run(chains: list[Chain]) -> Iterator[Scored]:
    """Each turn triaged with its chain's context, then answered as the pipeline would."""
    rows, data, optimization = _workspace()
    for chain in chains:
        context: ThreadContext | None = None
        for index, turn in enumerate(chain.turns):
            result = analyze(
                turn.message,
                now=NOW,
                known_models=MODELS,
                known_features=FEATURES,
                known_providers=PROVIDERS,
                context=context,
            )
            triaged = TriageResponse.build(result, decide_route(result, has_usage_data=True))
            yield Scored(turn, index > 0, failures(turn, triaged), triaged)
            agents = triaged.route.agents
            measured = data if "data" in agents else None
            context = next_context(
                context,
                run_id=f"run-{turn.line}",
                question=turn.message,
                triaged=triaged,
                data=measured,
                optimization=optimization if "optimization" in agents else None,
                driver_days=driver_days(rows, data.anomalies) if measured else (),
            )


@dataclass(frozen=True)
class Report:
    scored: list[Scored]

    def by_intent(self) -> dict[Intent, tuple[int, int]]:
        right: Counter[Intent] = Counter()
        total: Counter[Intent] = Counter()
        for item in self.scored:
            total[item.turn.intent] += 1
            right[item.turn.intent] += item.intent_right
        return {intent: (right[intent], total[intent]) for intent in Intent if total[intent]}

    @property
    def intent_accuracy(self) -> float:
        return sum(s.intent_right for s in self.scored) / len(self.scored)

    @property
    def follow_ups(self) -> list[Scored]:
        return [s for s in self.scored if s.follow_up]

    @property
    def follow_up_accuracy(self) -> float:
        follow = self.follow_ups
        return sum(not s.wrong for s in follow) / len(follow) if follow else 1.0

    @property
    def all_checks_accuracy(self) -> float:
        return sum(not s.wrong for s in self.scored) / len(self.scored)

    def table(self) -> str:
        lines = ["| intent | right | of | accuracy |", "|---|---|---|---|"]
        for intent, (right, total) in self.by_intent().items():
            lines.append(f"| `{intent.value}` | {right} | {total} | {right / total:.1%} |")
        right = sum(s.intent_right for s in self.scored)
        lines.append(f"| all | {right} | {len(self.scored)} | {self.intent_accuracy:.1%} |")
        follow = self.follow_ups
        resolved = sum(not s.wrong for s in follow)
        lines.append(
            f"| follow-ups resolved in full | {resolved} | {len(follow)} | "
            f"{self.follow_up_accuracy:.1%} |"
        )
        full = sum(not s.wrong for s in self.scored)
        lines.append(
            f"| every check of every message | {full} | {len(self.scored)} | "
            f"{self.all_checks_accuracy:.1%} |"
        )
        return "\n".join(lines)


def score(path: Path) -> Report:
    return Report(list(run(parse(path))))


def main(paths: list[str]) -> None:
    for path in [Path(p) for p in paths] or [LABELLED, FRESH]:
        if not path.exists():
            continue
        report = score(path)
        print(f"\n{path.name}: {len(report.scored)} messages\n{report.table()}")
        for item in report.scored:
            if item.wrong:
                print(f"  line {item.turn.line}: {item.turn.message!r}: {'; '.join(item.wrong)}")


if __name__ == "__main__":
    main(sys.argv[1:])
