"""The numbers in an answer, and whether the findings back each one (DESIGN §8).

An answer may only contain numbers the findings (or the question) hold. ``extract_numbers``
reads every number a reader would see in a text: money (``$1,840.25``, ``$1.8k``,
``USD 12``), percentages (``30%``, ``-12.3 %``, ``5 percent``), counts (``1,234``), decimals,
scaled numbers (``1.2M``, ``3 million``), ratios (``3.4x``), ordinals (``3rd``, a Markdown
list marker ``2.``), ISO dates and times (``2026-11-13``, ``14:05``) and month-name dates
(``Nov 13``, ``13 November 2026``). Digits inside identifiers (``gpt-4o``, ``p95``,
``claude-3-5-sonnet-20241022``, ``le_500``) are names, not numbers, and are skipped.

``FindingsNumbers`` collects what the findings allow, and ``check_text`` returns the
numbers of a text that nothing allows. A number is allowed when:

- a numeric value anywhere in the findings JSON (its numbers, the numbers written in its
  strings as this module reads them, the lengths of its lists, and the length in days of
  every ``{start, end}`` period) rounds to it at the precision it is written with: a number
  is taken to stand for
  the interval of half a unit of its last written digit (``1,840.25`` ±0.005, ``$1.8k``
  ±50, ``12%`` ±0.5); an integer ending in zeros keeps at least two significant digits
  (``1,800`` ±50, ``100`` ±5, ``10`` ±0.5). Signs are ignored (a fall of ``-12.3`` may be
  written "fell 12.3%"). A percentage also matches a fraction (``0.123`` → ``12.3%``);
- or the question holds it (same rule);
- or it is a small count: an integer from 0 to 10 with no unit, currency or scale;
- or it is an ordinal up to 10 or up to the length of the longest list in the findings;
- or it is a year, a date, a month-and-day or a time of day of a timestamp in the findings
  or the question. A period end at midnight also allows the day before it (an exclusive
  end written as the inclusive last day).

Nothing here knows about money formats beyond reading them: the rule is "the findings hold
this value", whatever its unit.
"""

from __future__ import annotations

import bisect
import calendar
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Final, Literal

from shared.models.findings import Findings

NumberKind = Literal["plain", "money", "percent", "ordinal", "date", "time"]

SMALL_COUNT_MAX: Final = 10
# Relative slack on top of the rounding interval, for binary floating point.
_REL_EPS: Final = 1e-9

_SCALES: Final[dict[str, float]] = {
    "k": 1e3,
    "K": 1e3,
    "m": 1e6,
    "M": 1e6,
    "mn": 1e6,
    "B": 1e9,
    "bn": 1e9,
    "thousand": 1e3,
    "million": 1e6,
    "billion": 1e9,
    "trillion": 1e12,
}

_MONTHS: Final[dict[str, int]] = {
    **{name.lower(): index for index, name in enumerate(calendar.month_name) if name},
    **{name.lower(): index for index, name in enumerate(calendar.month_abbr) if name},
    "sept": 9,
}
_MONTH_RE: Final = "|".join(sorted(_MONTHS, key=len, reverse=True))

# Words that start with a letter or underscore and contain a digit are identifiers
# (model ids, field names, p95); their digits are not numbers of the answer.
_IDENTIFIER: Final = re.compile(r"(?<![\w$€£])[A-Za-z_][\w\-./]*\w")

_ISO_DATETIME: Final = re.compile(
    r"(?<![\w.\-])(?P<y>\d{4})-(?P<mo>\d{2})-(?P<d>\d{2})"
    r"(?:[T ](?P<h>\d{2}):(?P<mi>\d{2})(?::(?P<s>\d{2})(?:\.\d+)?)?"
    r"(?:Z|[+-]\d{2}:?\d{2})?)?(?![\w\-])"
)
_TIME: Final = re.compile(r"(?<![\w.:])(?P<h>\d{1,2}):(?P<mi>\d{2})(?::(?P<s>\d{2}))?(?![\w:])")
_MONTH_DAY: Final = re.compile(
    rf"(?<![\w])(?P<month>{_MONTH_RE})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?(?!\w)"
    r"(?:,?\s+(?P<y>\d{4})(?!\w))?",
    re.IGNORECASE,
)
_DAY_MONTH: Final = re.compile(
    rf"(?<![\w.])(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<month>{_MONTH_RE})\.?(?!\w)"
    r"(?:,?\s+(?P<y>\d{4})(?!\w))?",
    re.IGNORECASE,
)
_ORDINAL: Final = re.compile(r"(?<![\w.,])(?P<n>\d+)(?:st|nd|rd|th)(?!\w)")
_LIST_MARKER: Final = re.compile(r"^[ \t>]*(?P<n>\d+)[.)](?=[ \t])", re.MULTILINE)
_NUMBER: Final = re.compile(
    r"(?P<sign>[-+\u2212])?"
    r"(?P<cur>US\$|\$|€|£|USD\s?)?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?P<unit>[A-Za-z_]\w*)?"
    r"(?:\s(?P<word>thousand|million|billion|trillion)(?!\w))?"
    r"(?P<pct>\s?%|\s(?:percent|per\s?cent|percentage\s+points?)(?!\w))?"
    r"(?P<post>\s(?:USD|dollars)(?!\w))?"
)


@dataclass(frozen=True, slots=True)
class NumberToken:
    """One number as written: where, what kind, its value and the precision it shows.

    ``value`` is signed and scaled (``$1.8k`` → 1800.0); a percentage keeps the number
    written (``30%`` → 30.0). ``tolerance`` is half a unit of the last written digit, scaled.
    ``parts`` holds the components of a date ``(year|0, month, day)`` or a time
    ``(hour, minute[, second])``; a date written without a year has year 0.
    """

    text: str
    start: int
    kind: NumberKind
    value: float
    tolerance: float
    parts: tuple[int, ...] = ()
    # Written as a whole number, with no decimals, scale, currency or percent sign.
    integer: bool = False

    def __str__(self) -> str:
        return self.text


def _blank(text: str, spans: Iterable[tuple[int, int]]) -> str:
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _mask_identifiers(text: str) -> str:
    return _IDENTIFIER.sub(
        lambda m: " " * len(m.group()) if any(c.isdigit() for c in m.group()) else m.group(),
        text,
    )


def _precision(num: str) -> float:
    """The unit of the last written digit: 0.01 for ``1.25``, 100 for ``1,800``, 1 for ``10``."""
    if "." in num:
        return 10.0 ** -len(num.split(".", 1)[1])
    digits = num.replace(",", "")
    zeros = len(digits) - len(digits.rstrip("0"))
    # An integer ending in zeros may be rounded, but keeps two significant digits.
    return 10.0 ** min(zeros, max(0, len(digits) - 2))


def _valid_date(year: int, month: int, day: int) -> bool:
    try:
        date(year or 2000, month, day)  # 2000 is a leap year: Feb 29 without a year is fine
    except ValueError:
        return False
    return True


def _clock(match: re.Match[str]) -> tuple[int, ...]:
    """``(hour, minute)`` or ``(hour, minute, second)`` of a match with groups h, mi, s."""
    parts = (int(match["h"]), int(match["mi"]))
    return parts if match["s"] is None else (*parts, int(match["s"]))


def _dates_and_times(text: str) -> Iterator[NumberToken]:
    for match in _ISO_DATETIME.finditer(text):
        y, mo, d = int(match["y"]), int(match["mo"]), int(match["d"])
        if not _valid_date(y, mo, d):
            continue
        yield NumberToken(match.group(), match.start(), "date", 0.0, 0.0, (y, mo, d))
        if match["h"] is not None:
            yield NumberToken(match.group(), match.start(), "time", 0.0, 0.0, _clock(match))


def _named_dates(text: str) -> Iterator[NumberToken]:
    for pattern in (_MONTH_DAY, _DAY_MONTH):
        for match in pattern.finditer(text):
            year = int(match["y"]) if match["y"] else 0
            month, day = _MONTHS[match["month"].lower()], int(match["d"])
            if _valid_date(year, month, day):
                yield NumberToken(
                    match.group(), match.start(), "date", 0.0, 0.0, (year, month, day)
                )


def _times(text: str) -> Iterator[NumberToken]:
    for match in _TIME.finditer(text):
        parts = _clock(match)
        if parts[0] > 23 or parts[1] > 59:
            continue
        yield NumberToken(match.group(), match.start(), "time", 0.0, 0.0, parts)


def _ordinals(text: str) -> Iterator[NumberToken]:
    for pattern in (_ORDINAL, _LIST_MARKER):
        for match in pattern.finditer(text):
            n = int(match["n"])
            yield NumberToken(match.group().strip(), match.start("n"), "ordinal", float(n), 0.5)


def _sign_allowed(text: str, index: int) -> bool:
    # A sign is a sign only at the start of a word: in "3-12" or "a-1" the dash is not one.
    return index == 0 or text[index - 1] in " \t\n([{:=/\"'*_~"


def _plain_numbers(text: str) -> Iterator[NumberToken]:
    position = 0
    while (match := _NUMBER.search(text, position)) is not None:
        position = match.end()
        start = match.start()
        if match["sign"] and not _sign_allowed(text, start):
            start += 1
            sign = ""
        else:
            sign = match["sign"] or ""
        before = text[start - 1] if start > 0 else ""
        if before and (before.isalnum() or before in "_."):
            continue  # the tail of a word or of a number the scanner did not read
        num = match["num"]
        unit = match["unit"] or ""
        scale_word = unit if unit in _SCALES else (match["word"] or "")
        scale = _SCALES.get(scale_word, 1.0)
        value = float(num.replace(",", "")) * scale
        if sign in ("-", "\u2212"):
            value = -value
        kind: NumberKind = "plain"
        if match["pct"]:
            kind = "percent"
        elif match["cur"] or match["post"]:
            kind = "money"
        if match["pct"] or match["post"] or match["word"]:
            end = match.end()
        else:
            end = match.end("unit") if unit in _SCALES else match.end("num")
        yield NumberToken(
            text=text[start:end].strip(),
            start=start,
            kind=kind,
            value=value,
            tolerance=_precision(num) * scale / 2,
            integer=kind == "plain" and "." not in num and scale == 1.0,
        )


def extract_numbers(text: str) -> list[NumberToken]:
    """Every number in ``text`` a reader would see, in order of position."""
    masked = _mask_identifiers(text)
    tokens = [*_dates_and_times(masked), *_named_dates(masked)]
    masked = _blank(masked, ((t.start, t.start + len(t.text)) for t in tokens))
    times = list(_times(masked))
    masked = _blank(masked, ((t.start, t.start + len(t.text)) for t in times))
    ordinals = list(_ordinals(masked))
    masked = _blank(masked, ((t.start, t.start + len(t.text)) for t in ordinals))
    tokens += times + ordinals + list(_plain_numbers(masked))
    return sorted(tokens, key=lambda t: t.start)


def _parse_timestamp(value: str) -> datetime | None:
    if not _ISO_DATETIME.fullmatch(value.strip()):
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None


@dataclass
class FindingsNumbers:
    """What a text written from some findings may contain; build it with ``from_findings``."""

    values: list[float] = field(default_factory=list)  # absolute values, sorted
    dates: set[tuple[int, int, int]] = field(default_factory=set)
    times: set[tuple[int, ...]] = field(default_factory=set)
    longest_list: int = 0

    @classmethod
    def from_findings(cls, findings: Findings) -> FindingsNumbers:
        allowed = cls()
        values: set[float] = set()
        allowed._walk(findings.model_dump(mode="json"), values)
        allowed._add_text(findings.question, values)
        allowed.values = sorted(values)
        return allowed

    # --- collecting -------------------------------------------------------------------

    def _walk(self, node: Any, values: set[float]) -> None:
        if isinstance(node, bool) or node is None:
            return
        if isinstance(node, int | float):
            values.add(abs(float(node)))
        elif isinstance(node, str):
            self._add_text(node, values)
        elif isinstance(node, list):
            values.add(float(len(node)))
            self.longest_list = max(self.longest_list, len(node))
            for item in node:
                self._walk(item, values)
        elif isinstance(node, dict):  # an object's size is its schema's, not a finding
            for item in node.values():
                self._walk(item, values)
            self._add_period_length(node, values)

    def _add_period_length(self, node: dict[str, Any], values: set[float]) -> None:
        start, end = node.get("start"), node.get("end")
        if not (isinstance(start, str) and isinstance(end, str)):
            return
        begin, finish = _parse_timestamp(start), _parse_timestamp(end)
        if begin is not None and finish is not None and finish > begin:
            values.add((finish - begin) / timedelta(days=1))

    def _add_text(self, text: str, values: set[float]) -> None:
        timestamp = _parse_timestamp(text)
        if timestamp is not None:
            self._add_moment(timestamp, has_time=len(text.strip()) > len("YYYY-MM-DD"))
            return
        for token in extract_numbers(text):
            if token.kind == "date":
                year, month, day = token.parts
                self.dates.add((year, month, day))
            elif token.kind == "time":
                self.times.add(token.parts)
            else:
                values.add(abs(token.value))

    def _add_moment(self, moment: datetime, *, has_time: bool) -> None:
        day = moment.date()
        self.dates.add((day.year, day.month, day.day))
        if not has_time:
            return
        if (moment.hour, moment.minute, moment.second, moment.microsecond) == (0, 0, 0, 0):
            before = day - timedelta(days=1)  # an exclusive end at midnight, written inclusive
            self.dates.add((before.year, before.month, before.day))
        self.times.add((moment.hour, moment.minute))
        self.times.add((moment.hour, moment.minute, moment.second))

    # --- checking ---------------------------------------------------------------------

    def _holds(self, value: float, tolerance: float) -> bool:
        slack = tolerance + _REL_EPS * max(1.0, value)
        index = bisect.bisect_left(self.values, value - slack)
        return index < len(self.values) and self.values[index] <= value + slack

    def _date_allowed(self, parts: tuple[int, ...]) -> bool:
        year, month, day = parts
        if year:
            return (year, month, day) in self.dates
        return any((m, d) == (month, day) for _, m, d in self.dates)

    def allows(self, token: NumberToken) -> bool:
        """Whether the findings (or the question) back ``token``."""
        if token.kind == "date":
            return self._date_allowed(token.parts)
        if token.kind == "time":
            return token.parts in self.times or token.parts[:2] in self.times
        value = abs(token.value)
        if token.kind == "ordinal":
            return value <= max(SMALL_COUNT_MAX, self.longest_list) or any(
                d == value for _, _, d in self.dates
            )
        if self._holds(value, token.tolerance):
            return True
        if token.kind == "percent":
            return self._holds(value / 100, token.tolerance / 100)
        if not token.integer:
            return False
        if value <= SMALL_COUNT_MAX:
            return True
        return token.text.isdigit() and any(y == value for y, _, _ in self.dates)

    def offending(self, text: str) -> list[NumberToken]:
        """The numbers of ``text`` the findings do not back, in order of position."""
        return [token for token in extract_numbers(text) if not self.allows(token)]


def check_text(text: str, findings: Findings) -> list[NumberToken]:
    """The numbers in ``text`` that neither ``findings`` nor its question back."""
    return FindingsNumbers.from_findings(findings).offending(text)
