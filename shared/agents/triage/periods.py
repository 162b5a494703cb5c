"""Period phrases in a chat message ("last week", "since Nov 3", "in October", ...).

Pure: ``now`` is passed in. The longest phrase found wins; a period that cannot exist or
has not started is ignored (docs/triage.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Final

from shared.models.period import (
    DAYS_PER_MONTH,
    MAX_PERIOD_DAYS,
    day_start,
    month_start,
    resolve_token,
    to_date_end,
)
from shared.models.triage import PeriodEntity

_I: Final = re.IGNORECASE


_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?"
_ORD = r"(?:st|nd|rd|th)?"
_ISO = r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
_DATE = (
    rf"(?:{_ISO}|\b{_MONTH}\.?\s+[0-9]{{1,2}}{_ORD}\b"
    rf"(?:,?\s+[0-9]{{4}}\b)?|\b[0-9]{{1,2}}{_ORD}\s+(?:of\s+)?{_MONTH}\b(?:,?\s+[0-9]{{4}}\b)?)"
)
_NUMBER_WORDS: Final = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "a couple of": 2,
    "couple of": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "fourteen": 14,
    "fifteen": 15,
    "twenty": 20,
    "thirty": 30,
    "sixty": 60,
    "ninety": 90,
}
_NUM = (
    r"(?:[0-9]{1,4}|a couple of|couple of|"
    + "|".join(w for w in _NUMBER_WORDS if " " not in w and w not in {"a", "an"})
    + ")"
)
_UNIT_DAYS: Final = {
    "hour": 1 / 24,
    "day": 1,
    "week": 7,
    "fortnight": 14,
    "month": DAYS_PER_MONTH,
    "quarter": 3 * DAYS_PER_MONTH,
    "year": 365,
}

_MIN_YEAR: Final = 1970
_MAX_YEAR: Final = 2999
_ISO_DATE: Final = re.compile(r"([0-9]{4})-([0-9]{1,2})-([0-9]{1,2})")
_MONTH_DAY: Final = re.compile(
    rf"(?P<mon>{_MONTH})\.?\s+(?P<d>[0-9]{{1,2}}){_ORD}(?:,?\s+(?P<y>[0-9]{{4}}))?", _I
)
_DAY_MONTH: Final = re.compile(
    rf"(?P<d>[0-9]{{1,2}}){_ORD}\s+(?:of\s+)?(?P<mon>{_MONTH})(?:,?\s+(?P<y>[0-9]{{4}}))?", _I
)

# (token, start, end): a resolved candidate before it becomes a PeriodEntity.
_Span = tuple[str | None, datetime, datetime]
_PeriodRule = Callable[[re.Match[str], datetime], _Span | None]


_MONTHS: Final = (
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
)
_WEEKDAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _month_number(word: str) -> int:
    return _MONTHS.index(word[:3].lower()) + 1


def _weekday_number(word: str) -> int:
    return _WEEKDAYS.index(word[:3].lower())


def _safe_date(year: int, month: int, day: int) -> date | None:
    # Years outside usage-data history are typos; they would also overflow datetime.
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _parse_date(text: str, today: date, after: date | None = None) -> date | None:
    """A date phrase; without a year, the latest one not after ``today`` (or the first one
    on or after ``after``, for the end of a range)."""
    iso = _ISO_DATE.fullmatch(text)
    if iso:
        return _safe_date(int(iso.group(1)), int(iso.group(2)), int(iso.group(3)))
    match = _MONTH_DAY.fullmatch(text) or _DAY_MONTH.fullmatch(text)
    if match is None:
        return None
    month, day = _month_number(match.group("mon")), int(match.group("d"))
    if match.group("y"):
        return _safe_date(int(match.group("y")), month, day)
    # Feb 29 recurs only every 4 years (8 around a skipped century year); look that far.
    for offset in range(9):
        if after is None:
            found = _safe_date(today.year - offset, month, day)
            if found is not None and found <= today:
                return found
        else:
            found = _safe_date(after.year + offset, month, day)
            if found is not None and found >= after:
                return found
    return None


def _latest_month(month: int, year: str | None, today: date) -> datetime | None:
    if year:
        return month_start(int(year), month) if _MIN_YEAR <= int(year) <= _MAX_YEAR else None
    start = month_start(today.year, month)
    return start if start.date() <= today else month_start(today.year - 1, month)


def _to_date(start: datetime, end: datetime, now: datetime) -> datetime:
    # A period that is still running stops now, so it compares fairly with the previous one.
    return min(end, to_date_end(now)) if start <= now < end else end


def _last_weekday(word: str, today: date) -> datetime:
    # "on Tuesday" said on a Tuesday means last week's: today is "today".
    back = (today.weekday() - _weekday_number(word)) % 7 or 7
    return day_start(today - timedelta(days=back))


def _n_value(text: str) -> int:
    word = text.lower()
    return int(word) if word.isdigit() else _NUMBER_WORDS[word]


def _last_n(match: re.Match[str], now: datetime) -> _Span | None:
    count = _n_value(match.group("n"))
    unit = match.group("unit").lower().rstrip("s")
    days = count * _UNIT_DAYS[unit]
    if days <= 0:
        return None
    days = min(days, MAX_PERIOD_DAYS)
    token = f"last_{int(days)}d" if float(days).is_integer() else None
    return token, now - timedelta(days=days), now


def _past_unit(match: re.Match[str], now: datetime) -> _Span | None:
    days = _UNIT_DAYS[match.group("unit").lower()]
    token = f"last_{int(days)}d" if float(days).is_integer() else None
    return token, now - timedelta(days=days), now


def _token(token: str) -> _PeriodRule:
    def rule(_: re.Match[str], now: datetime) -> _Span:
        period = resolve_token(token, now)
        return token, period.start, period.end

    return rule


def _year(offset: int) -> _PeriodRule:
    def rule(_: re.Match[str], now: datetime) -> _Span:
        start = datetime(now.year + offset, 1, 1, tzinfo=UTC)
        return None, start, _to_date(start, datetime(now.year + offset + 1, 1, 1, tzinfo=UTC), now)

    return rule


def _quarter(offset: int) -> _PeriodRule:
    def rule(_: re.Match[str], now: datetime) -> _Span:
        first = (now.month - 1) // 3 * 3 + 1 + 3 * offset
        start = month_start(now.year, first)
        return None, start, _to_date(start, month_start(now.year, first + 3), now)

    return rule


def _named_quarter(match: re.Match[str], now: datetime) -> _Span | None:
    first = 3 * int(match.group("q")) - 2
    year = int(match.group("y") or now.year)
    if not _MIN_YEAR <= year <= _MAX_YEAR:
        return None
    if match.group("y") is None and month_start(year, first) > now:
        year -= 1  # "Q4" in March is last year's
    start = month_start(year, first)
    return None, start, _to_date(start, month_start(year, first + 3), now)


def _weekend(_: re.Match[str], now: datetime) -> _Span:
    # The last complete Saturday-Sunday.
    monday = day_start(now.date()) - timedelta(days=now.weekday())
    return None, monday - timedelta(days=2), monday


def _days_ago(match: re.Match[str], now: datetime) -> _Span | None:
    count = _n_value(match.group("n"))
    unit = match.group("unit").lower().rstrip("s")
    if unit == "day":
        start = day_start(now.date()) - timedelta(days=count)
        return None, start, start + timedelta(days=1)
    monday = day_start(now.date()) - timedelta(days=now.weekday())
    start = monday - timedelta(days=7 * count)
    return None, start, start + timedelta(days=7)


def _day_before_yesterday(_: re.Match[str], now: datetime) -> _Span:
    start = day_start(now.date()) - timedelta(days=2)
    return None, start, start + timedelta(days=1)


def _weekday(match: re.Match[str], now: datetime) -> _Span:
    start = _last_weekday(match.group("wd"), now.date())
    return None, start, start + timedelta(days=1)


def _single_date(match: re.Match[str], now: datetime) -> _Span | None:
    day = _parse_date(match.group("a"), now.date())
    if day is None:
        return None
    return None, day_start(day), day_start(day) + timedelta(days=1)


def _date_range(match: re.Match[str], now: datetime) -> _Span | None:
    first = _parse_date(match.group("a"), now.date())
    if first is None:
        return None
    last = _parse_date(match.group("b"), now.date(), after=first)
    if last is None:
        return None
    first, last = min(first, last), max(first, last)
    return None, day_start(first), day_start(last) + timedelta(days=1)


def _named_month(match: re.Match[str], now: datetime) -> _Span | None:
    start = _latest_month(_month_number(match.group("mon")), match.group("y"), now.date())
    if start is None:
        return None
    return None, start, _to_date(start, month_start(start.year, start.month + 1), now)


def _bare_month(match: re.Match[str], now: datetime) -> _Span | None:
    start = _latest_month(_month_number(match.group("mon")), None, now.date())
    if start is None:
        return None
    return None, start, _to_date(start, month_start(start.year, start.month + 1), now)


def _since(match: re.Match[str], now: datetime) -> _Span | None:
    today = now.date()
    if match.group("a"):
        day = _parse_date(match.group("a"), today)
        start = day_start(day) if day else None
    elif match.group("wd"):
        start = _last_weekday(match.group("wd"), today)
    elif match.group("mon"):
        start = _latest_month(_month_number(match.group("mon")), None, today)
    else:
        anchor = match.group("rel").lower().replace("the beginning", "the start")
        start = resolve_token(_SINCE_ANCHORS[anchor], now).start
    return None if start is None else (None, start, to_date_end(now))


_SINCE_ANCHORS: Final = {
    "yesterday": "yesterday",
    "last week": "last_week",
    "last month": "last_month",
    "the start of the week": "this_week",
    "the start of this week": "this_week",
    "the start of the month": "this_month",
    "the start of this month": "this_month",
}


def _rule(pattern: str, rule: _PeriodRule) -> tuple[re.Pattern[str], _PeriodRule]:
    return re.compile(pattern, _I), rule


_PERIOD_RULES: Final = (
    _rule(
        rf"\b(?:between|from)\s+(?P<a>{_DATE})\s+(?:and|to|through|thru|until|till|-|\u2013)\s+"
        rf"(?P<b>{_DATE})",
        _date_range,
    ),
    _rule(
        rf"(?P<a>\b{_ISO})\s*(?:to|through|thru|until|-|\u2013|\.\.)\s*(?P<b>{_ISO})\b",
        _date_range,
    ),
    _rule(
        rf"\bsince\s+(?:(?P<a>{_DATE})|(?:last\s+)?(?P<wd>\b{_WEEKDAY})\b|"
        rf"(?P<mon>\b{_MONTH})\b(?!\.?\s+[0-9])|(?P<rel>yesterday|last week|last month|"
        r"the (?:start|beginning) of (?:the|this) (?:week|month)))",
        _since,
    ),
    _rule(rf"(?:\bon\s+(?:the\s+)?)?(?P<a>{_DATE})", _single_date),
    _rule(rf"\b(?:on\s+|last\s+|this past\s+)?(?P<wd>{_WEEKDAY})s?\b", _weekday),
    _rule(
        rf"\b(?:in|during|for|of|over|across|throughout)\s+(?:the\s+month\s+of\s+)?"
        rf"(?P<mon>{_MONTH})\b(?!\.?\s+[0-9]{{1,2}}{_ORD}\b)(?:\s+(?P<y>[0-9]{{4}})\b)?",
        _named_month,
    ),
    _rule(rf"\b(?P<mon>{_MONTH})\.?\s+(?P<y>[0-9]{{4}})\b", _named_month),
    _rule(
        rf"\b(?:past|last|previous|prior|trailing)\s+(?P<n>{_NUM})\s+"
        r"(?P<unit>hours?|days?|weeks?|fortnights?|months?|quarters?|years?)\b",
        _last_n,
    ),
    _rule(
        r"\b(?:past|trailing)\s+(?P<unit>hour|day|week|fortnight|month|quarter|year)\b", _past_unit
    ),
    _rule(r"\blast\s+(?P<unit>hour|day|fortnight)\b", _past_unit),
    _rule(rf"\b(?P<n>{_NUM}|a|an)\s+(?P<unit>days?|weeks?)\s+ago\b", _days_ago),
    _rule(r"\bday before yesterday\b", _day_before_yesterday),
    # "the last week" is the 7 days ending now; "last week" the calendar week before this.
    _rule(r"\bthe\s+last\s+(?P<unit>week|month)\b", _past_unit),
    # A month named alone ("the research agent, October"): the latest one that has begun.
    _rule(
        r"\b(?P<mon>january|february|april|june|july|august|september|october|november|"
        r"december)\b(?!\.?\s+[0-9])",
        _bare_month,
    ),
    _rule(r"\btoday\b|\bso far today\b", _token("today")),
    _rule(r"\byesterday\b", _token("yesterday")),
    _rule(r"\b(?:this|current)\s+week\b|\bweek[- ]to[- ]date\b|\bwtd\b", _token("this_week")),
    _rule(r"\b(?:last|previous|prior)\s+week\b", _token("last_week")),
    _rule(r"\b(?:this|current)\s+month\b|\bmonth[- ]to[- ]date\b|\bmtd\b", _token("this_month")),
    _rule(r"\b(?:last|previous|prior)\s+month\b", _token("last_month")),
    _rule(r"\b(?:this|current)\s+year\b|\byear[- ]to[- ]date\b|\bytd\b", _year(0)),
    _rule(r"\b(?:last|previous|prior)\s+year\b", _year(-1)),
    _rule(r"\b(?:this|current)\s+quarter\b|\bqtd\b", _quarter(0)),
    _rule(r"\b(?:last|previous|prior)\s+quarter\b", _quarter(-1)),
    _rule(r"\b(?:over\s+)?(?:the\s+|last\s+)?weekend\b", _weekend),
    _rule(r"\b(?:(?:in|during|for)\s+)?q(?P<q>[1-4])(?:\s+(?P<y>[0-9]{4}))?\b", _named_quarter),
)


def find_period(text: str, now: datetime) -> PeriodEntity | None:
    """The period the message names; with several, the longest phrase (then the first)."""
    best: tuple[int, int, PeriodEntity] | None = None
    for pattern, rule in _PERIOD_RULES:
        for match in pattern.finditer(text):
            span = rule(match, now)
            if span is None:
                continue
            token, start, end = span
            # Keep the most recent MAX_PERIOD_DAYS of a longer span: the API allows no more.
            start = max(start, end - timedelta(days=MAX_PERIOD_DAYS))
            # A period that has not begun holds no usage: a typo, not a question.
            if end <= start or start >= to_date_end(now):
                continue
            rank = (-(match.end() - match.start()), match.start())
            if best is None or rank < best[:2]:
                phrase = match.group().strip()
                best = (*rank, PeriodEntity(start=start, end=end, phrase=phrase, token=token))
    return best[2] if best else None
